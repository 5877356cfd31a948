"""The showcase `make demo` runs; it ships with the package as `tasker demo`."""

from tasker.demo import main

if __name__ == "__main__":
    main()
