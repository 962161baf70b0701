//! Who gets a connection: at most [`MAX_CONNECTIONS`] at once, at most
//! [`MAX_CONNECTIONS_PER_CLIENT`] per client (an IPv4 address, or an IPv6 /64, which one host
//! usually has whole), and the last [`CONNECTIONS_KEPT_FOR_NEW_CLIENTS`] only for clients that
//! hold none yet, so one client (or a few) reopening connections cannot lock a scraper out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::limits::{
    CONNECTIONS_KEPT_FOR_NEW_CLIENTS, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT,
};
use crate::sync::Recover;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The server holds all the connections it may (for this client: the shared part).
    Connections,
    /// This client holds all the connections one client may.
    PerClient,
}

/// A client, as the caps count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4([u8; 4]),
    /// The first 64 bits.
    V6([u8; 8]),
}

impl Client {
    fn of(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(v4.octets()),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    Client::V6(prefix)
                }
            },
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    open: usize,
    by_client: HashMap<Client, usize>,
}

/// The open connections, by client.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    table: Arc<Mutex<Table>>,
    max: usize,
    per_client: usize,
    kept: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(
            MAX_CONNECTIONS,
            MAX_CONNECTIONS_PER_CLIENT,
            CONNECTIONS_KEPT_FOR_NEW_CLIENTS,
        )
    }
}

/// One admitted connection; its place is given back on drop.
#[derive(Debug)]
pub(crate) struct Admitted {
    table: Arc<Mutex<Table>>,
    client: Client,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut t = self.table.lock().recover();
        t.open = t.open.saturating_sub(1);
        if let Some(n) = t.by_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.by_client.remove(&self.client);
            }
        } else {
            debug_assert!(false, "a connection given back twice");
        }
    }
}

impl Limits {
    pub(crate) fn new(max: usize, per_client: usize, kept: usize) -> Self {
        Limits {
            table: Arc::new(Mutex::new(Table::default())),
            max,
            per_client,
            kept,
        }
    }

    /// Admits a connection from `ip`, or says why not.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Admitted, Refused> {
        let client = Client::of(ip);
        let mut t = self.table.lock().recover();
        let held = t.by_client.get(&client).copied().unwrap_or(0);
        if t.open >= self.max {
            return Err(Refused::Connections);
        }
        if held >= self.per_client {
            return Err(Refused::PerClient);
        }
        if held > 0 && t.open >= self.max.saturating_sub(self.kept) {
            return Err(Refused::Connections);
        }
        t.open += 1;
        *t.by_client.entry(client).or_insert(0) += 1;
        Ok(Admitted {
            table: Arc::clone(&self.table),
            client,
        })
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.table.lock().recover().open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_client_cap_and_room_for_new_clients() {
        let limits = Limits::new(10, 4, 3);
        let a: Vec<_> = (0..4)
            .map(|_| limits.admit(ip("10.0.0.1")).unwrap())
            .collect();
        assert_eq!(
            limits.admit(ip("10.0.0.1")).unwrap_err(),
            Refused::PerClient
        );
        let b: Vec<_> = (0..3)
            .map(|_| limits.admit(ip("10.0.0.2")).unwrap())
            .collect();
        // 7 open: the last 3 places are for clients holding none.
        assert_eq!(
            limits.admit(ip("10.0.0.2")).unwrap_err(),
            Refused::Connections
        );
        let c = limits.admit(ip("10.0.0.3")).unwrap();
        let d = limits.admit(ip("10.0.0.4")).unwrap();
        let e = limits.admit(ip("10.0.0.5")).unwrap();
        assert_eq!(
            limits.admit(ip("10.0.0.6")).unwrap_err(),
            Refused::Connections
        );
        drop((c, d, e));
        drop(a);
        assert_eq!(limits.open(), 3);
        assert!(limits.admit(ip("10.0.0.1")).is_ok());
        drop(b);
        assert_eq!(limits.open(), 0);
    }

    #[test]
    fn an_ipv6_host_is_its_64_and_mapped_v4_is_v4() {
        let limits = Limits::new(100, 2, 0);
        let _a = limits.admit(ip("2001:db8::1")).unwrap();
        let _b = limits.admit(ip("2001:db8::2")).unwrap();
        assert_eq!(
            limits.admit(ip("2001:db8::ffff:3")).unwrap_err(),
            Refused::PerClient
        );
        assert!(limits.admit(ip("2001:db8:0:1::1")).is_ok());
        let _c = limits.admit(ip("192.0.2.1")).unwrap();
        let _d = limits.admit(ip("::ffff:192.0.2.1")).unwrap();
        assert_eq!(
            limits.admit(ip("192.0.2.1")).unwrap_err(),
            Refused::PerClient
        );
    }
}
