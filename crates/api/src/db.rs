//! The db service's messages and typed client: filled in by the db server's issue.
