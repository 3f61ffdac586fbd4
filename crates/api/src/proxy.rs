//! The proxy service's messages and typed client: filled in by the proxy server's issue.
