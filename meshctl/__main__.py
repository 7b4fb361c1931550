from meshctl._entry import main

main()
