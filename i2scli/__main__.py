from i2scli.cli import main

main()
