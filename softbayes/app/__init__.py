"""The application: analysis specs, the runner, reports and the command line."""
