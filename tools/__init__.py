"""Release tooling: `make dist` builds and checks every package (`tools.dist`)."""
