from flowdeck.cli.main import main

main()
