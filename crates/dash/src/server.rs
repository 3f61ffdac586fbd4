//! The four servers the dashboard watches, and what it knows about each by
//! name alone.

use std::fmt;

/// One of the suite's servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Server {
    Files,
    Print,
    Db,
    Proxy,
}

impl Server {
    /// Every server, in the order of the header chips and the tabs.
    pub const ALL: [Server; 4] = [Server::Files, Server::Print, Server::Db, Server::Proxy];

    /// The service name the server answers to in the handshake, which is
    /// also its name in the config file and on screen.
    pub fn name(self) -> &'static str {
        match self {
            Server::Files => "files",
            Server::Print => "print",
            Server::Db => "db",
            Server::Proxy => "proxy",
        }
    }

    /// Where the server listens when nobody says otherwise. The proxy's is
    /// its admin port, not the port browsers use.
    pub fn default_addr(self) -> &'static str {
        match self {
            Server::Files => "127.0.0.1:7701",
            Server::Print => "127.0.0.1:7702",
            Server::Db => "127.0.0.1:7703",
            Server::Proxy => "127.0.0.1:7704",
        }
    }

    /// The position of the server in [`Server::ALL`], for per-server arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_the_position_in_all() {
        for (i, server) in Server::ALL.into_iter().enumerate() {
            assert_eq!(server.index(), i, "{server}");
        }
    }
}
