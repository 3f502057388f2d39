from flowdeck.cli import main

main()
