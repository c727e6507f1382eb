//! The connection phase: the server's greeting (HandshakeV10), the client's SSLRequest and
//! HandshakeResponse41, and the authentication exchange packets.

use super::caps;
use super::wire::{put_lenenc_str, put_nul_str, Reader};
use super::CodecError;

/// The server's first packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// Server version text.
    pub version: String,
    /// Connection (thread) id.
    pub connection_id: u32,
    /// The 20-byte nonce the client scrambles its password with.
    pub scramble: Vec<u8>,
    /// Capability flags (lower 32 bits).
    pub capabilities: u32,
    /// Default character set.
    pub charset: u8,
    /// Status flags.
    pub status: u16,
    /// Authentication plugin the scramble is meant for.
    pub plugin: String,
}

impl Greeting {
    /// Encodes the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(10);
        put_nul_str(out, self.version.as_bytes());
        out.extend_from_slice(&self.connection_id.to_le_bytes());
        out.extend_from_slice(&self.scramble[..8]);
        out.push(0);
        out.extend_from_slice(&(self.capabilities as u16).to_le_bytes());
        out.push(self.charset);
        out.extend_from_slice(&self.status.to_le_bytes());
        out.extend_from_slice(&((self.capabilities >> 16) as u16).to_le_bytes());
        out.push(self.scramble.len() as u8 + 1);
        out.extend_from_slice(&[0; 10]);
        out.extend_from_slice(&self.scramble[8..]);
        out.push(0);
        put_nul_str(out, self.plugin.as_bytes());
    }

    /// Reads a server's greeting.
    pub fn parse(payload: &[u8]) -> Result<Greeting, CodecError> {
        let mut r = Reader::new(payload, "server greeting");
        if r.u8()? != 10 {
            return Err(CodecError::Malformed("server greeting (protocol version)"));
        }
        let version = String::from_utf8_lossy(r.nul_str()?).into_owned();
        let connection_id = r.u32()?;
        let mut scramble = r.bytes(8)?.to_vec();
        r.u8()?;
        let mut capabilities = u32::from(r.u16()?);
        let charset = r.u8()?;
        let status = r.u16()?;
        capabilities |= u32::from(r.u16()?) << 16;
        let data_len = r.u8()? as usize;
        r.bytes(10)?;
        if capabilities & caps::SECURE_CONNECTION != 0 {
            let n = data_len.saturating_sub(8).max(13);
            let part = r.bytes(n)?;
            // The second part ends with a NUL that is not part of the nonce.
            let part = part.strip_suffix(&[0]).unwrap_or(part);
            scramble.extend_from_slice(part);
        }
        let plugin = if capabilities & caps::PLUGIN_AUTH != 0 {
            String::from_utf8_lossy(r.nul_or_eof_str()).into_owned()
        } else {
            "mysql_native_password".into()
        };
        Ok(Greeting {
            version,
            connection_id,
            scramble,
            capabilities,
            charset,
            status,
            plugin,
        })
    }
}

/// The 32 bytes every client login starts with; alone (with `SSL` set) it is an SSLRequest.
pub const LOGIN_PREFIX: usize = 32;

/// The client's HandshakeResponse41.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// Capability flags.
    pub capabilities: u32,
    /// Largest packet the client accepts.
    pub max_packet: u32,
    /// Character set.
    pub charset: u8,
    /// User name.
    pub user: String,
    /// The authentication plugin's answer to the scramble.
    pub auth: Vec<u8>,
    /// Initial database.
    pub database: Option<String>,
    /// Authentication plugin the answer was computed with.
    pub plugin: Option<String>,
    /// Connection attributes (key, value).
    pub attrs: Vec<(String, String)>,
}

/// Whether a login packet's payload is a bare SSLRequest.
pub fn is_ssl_request(payload: &[u8]) -> bool {
    payload.len() == LOGIN_PREFIX
        && u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]) & caps::SSL != 0
}

impl HandshakeResponse {
    /// Reads a client's login.
    pub fn parse(payload: &[u8]) -> Result<HandshakeResponse, CodecError> {
        let mut r = Reader::new(payload, "handshake response");
        let capabilities = r.u32()?;
        if capabilities & caps::PROTOCOL_41 == 0 {
            return Err(CodecError::Malformed(
                "handshake response (pre-4.1 protocol)",
            ));
        }
        let max_packet = r.u32()?;
        let charset = r.u8()?;
        r.bytes(23)?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let user = text(r.nul_str()?);
        let auth = if capabilities & caps::PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            r.lenenc_str()?.to_vec()
        } else if capabilities & caps::SECURE_CONNECTION != 0 {
            let n = r.u8()? as usize;
            r.bytes(n)?.to_vec()
        } else {
            r.nul_str()?.to_vec()
        };
        let database = if capabilities & caps::CONNECT_WITH_DB != 0 && !r.is_empty() {
            Some(text(r.nul_or_eof_str())).filter(|d| !d.is_empty())
        } else {
            None
        };
        let plugin = if capabilities & caps::PLUGIN_AUTH != 0 && !r.is_empty() {
            Some(text(r.nul_or_eof_str()))
        } else {
            None
        };
        let mut attrs = Vec::new();
        if capabilities & caps::CONNECT_ATTRS != 0 && !r.is_empty() {
            let total = r.lenenc_int()? as usize;
            let mut a = Reader::new(r.bytes(total)?, "connection attributes");
            while !a.is_empty() {
                let k = text(a.lenenc_str()?);
                let v = text(a.lenenc_str()?);
                attrs.push((k, v));
            }
        }
        Ok(HandshakeResponse {
            capabilities,
            max_packet,
            charset,
            user,
            auth,
            database,
            plugin,
            attrs,
        })
    }

    /// The first 32 bytes of the login (an SSLRequest when `SSL` is set).
    fn encode_prefix(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.capabilities.to_le_bytes());
        out.extend_from_slice(&self.max_packet.to_le_bytes());
        out.push(self.charset);
        out.extend_from_slice(&[0; 23]);
    }

    /// Encodes the whole login.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_prefix(out);
        put_nul_str(out, self.user.as_bytes());
        if self.capabilities & caps::PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            put_lenenc_str(out, &self.auth);
        } else {
            out.push(self.auth.len() as u8);
            out.extend_from_slice(&self.auth);
        }
        if self.capabilities & caps::CONNECT_WITH_DB != 0 {
            put_nul_str(out, self.database.as_deref().unwrap_or("").as_bytes());
        }
        if self.capabilities & caps::PLUGIN_AUTH != 0 {
            put_nul_str(out, self.plugin.as_deref().unwrap_or("").as_bytes());
        }
        if self.capabilities & caps::CONNECT_ATTRS != 0 {
            let mut attrs = Vec::new();
            for (k, v) in &self.attrs {
                put_lenenc_str(&mut attrs, k.as_bytes());
                put_lenenc_str(&mut attrs, v.as_bytes());
            }
            put_lenenc_str(out, &attrs);
        }
    }
}

/// AuthSwitchRequest: use `plugin` with this `data` (the scramble) instead.
pub fn encode_auth_switch(out: &mut Vec<u8>, plugin: &str, data: &[u8]) {
    out.push(0xFE);
    put_nul_str(out, plugin.as_bytes());
    out.extend_from_slice(data);
    out.push(0);
}

/// A server's AuthSwitchRequest: (plugin, data without the trailing NUL).
pub fn parse_auth_switch(payload: &[u8]) -> Result<(String, Vec<u8>), CodecError> {
    let mut r = Reader::new(payload, "auth switch request");
    if r.u8()? != 0xFE {
        return Err(CodecError::Malformed("auth switch request"));
    }
    let plugin = String::from_utf8_lossy(r.nul_or_eof_str()).into_owned();
    let data = r.eof_bytes();
    let data = data.strip_suffix(&[0]).unwrap_or(data);
    Ok((plugin, data.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_round_trips() -> Result<(), Box<dyn std::error::Error>> {
        let g = Greeting {
            version: "8.0.0-sluice".into(),
            connection_id: 7,
            scramble: (1..=20).collect(),
            capabilities: caps::GATEWAY,
            charset: 45,
            status: 2,
            plugin: "caching_sha2_password".into(),
        };
        let mut out = Vec::new();
        g.encode(&mut out);
        assert_eq!(Greeting::parse(&out)?, g);
        Ok(())
    }

    #[test]
    fn login_round_trips_and_ssl_request_is_recognised() -> Result<(), Box<dyn std::error::Error>> {
        let login = HandshakeResponse {
            capabilities: caps::GATEWAY,
            max_packet: 1 << 24,
            charset: 45,
            user: "mysql-demo".into(),
            auth: vec![1; 32],
            database: Some("test".into()),
            plugin: Some("caching_sha2_password".into()),
            attrs: vec![("_client_name".into(), "libmariadb".into())],
        };
        let mut out = Vec::new();
        login.encode(&mut out);
        assert_eq!(HandshakeResponse::parse(&out)?, login);
        assert!(!is_ssl_request(&out));
        assert!(is_ssl_request(&out[..LOGIN_PREFIX]));
        for cut in 0..out.len() - 1 {
            // Any truncation is an error or a shorter (still valid) login, never a panic.
            let _ = HandshakeResponse::parse(&out[..cut]);
        }
        Ok(())
    }

    #[test]
    fn auth_switch_round_trips() -> Result<(), Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        encode_auth_switch(&mut out, "mysql_native_password", &[9; 20]);
        assert_eq!(
            parse_auth_switch(&out)?,
            ("mysql_native_password".to_string(), vec![9; 20])
        );
        Ok(())
    }
}
