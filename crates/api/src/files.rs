//! The files service's messages and typed client: filled in by the files server's issue.
