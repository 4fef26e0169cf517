"""One module per section of the performance issue (issue 5); each returns table rows."""
