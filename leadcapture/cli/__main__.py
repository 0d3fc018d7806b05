from leadcapture.cli import main

main()
