"""The JSON Schemas editors and CI reference by path, installed as `flowdeck.schemas`."""
