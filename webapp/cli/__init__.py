"""The `jobwarden` command line: `main` dispatches, `server` holds the server-side
commands, `operator` the commands that talk to a running server, `devserver`
the all-in-one `jobwarden dev`."""
