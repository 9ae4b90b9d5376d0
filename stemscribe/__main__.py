from stemscribe.cli import main

main()
