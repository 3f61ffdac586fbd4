//! The print service's messages and typed client: filled in by the print server's issue.
