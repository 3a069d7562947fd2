//! QUIC transport: a quinn endpoint whose TLS identity is the node's own ed25519 key.
//!
//! TLS 1.3 with RFC 7250 raw public keys: the "certificate" each side presents is the
//! SubjectPublicKeyInfo of its node key, and its handshake signature proves it holds the secret
//! key. A dialer pins the NodeId of the peer address: any other key fails the handshake. A
//! listener accepts any valid ed25519 key; *authorization* (is this region admitted?) is decided
//! by the sync session after the handshake, never assumed from a successful connect.
//!
//! Every message is a length-prefixed frame ([`FramedSend`], [`FramedRecv`]); the length is
//! checked against the frame cap before a byte of the body is buffered.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ed25519_dalek::pkcs8::EncodePrivateKey;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls13_signature_with_raw_key,
};
use rustls::pki_types::{
    CertificateDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer, UnixTime, alg_id,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use spindel_protocol::sync::{self, ALPN, FRAME_PREFIX_BYTES, Message};
use spindel_protocol::{NodeId, SecretKey};

/// Named limits of the transport; all configurable (`[limits]` in `spindel.toml`; a key left
/// out keeps its default).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest frame accepted (length prefix excluded).
    pub frame_bytes_max: usize,
    /// Connections this endpoint accepts at once.
    pub connections_max: usize,
    /// Bidirectional streams a peer may open at once on one connection.
    pub streams_per_connection_max: u32,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout_ms: u64,
    /// A connect that has not completed its handshake by then fails.
    pub handshake_timeout_ms: u64,
    /// A stream whose first frame has not arrived whole by then is closed, and a query answer
    /// the asker does not read within it is dropped.
    pub first_frame_timeout_ms: u64,
    /// Flow-control window of one stream.
    pub stream_window_bytes: u32,
    /// Flow-control window of one connection.
    pub connection_window_bytes: u32,
}

/// What a frame's buffer starts with; it grows as the frame's bytes arrive.
pub const FRAME_INITIAL_BYTES: usize = 16 * 1024;

/// A link with no packet for this long is dead: a silent peer is noticed within it.
pub const IDLE_TIMEOUT_MS: u64 = 4_000;
/// Keep-alives go out this often on an idle link, so a live one never reaches the idle timeout
/// (several may be lost before it does).
pub const KEEP_ALIVE_MS: u64 = 1_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            frame_bytes_max: sync::FRAME_BYTES_MAX,
            connections_max: 256,
            streams_per_connection_max: 8,
            idle_timeout_ms: IDLE_TIMEOUT_MS,
            handshake_timeout_ms: 10_000,
            first_frame_timeout_ms: 10_000,
            stream_window_bytes: 2 * 1024 * 1024,
            connection_window_bytes: 8 * 1024 * 1024,
        }
    }
}

/// A limit outside the range the node works in (`run`'s settings file), by field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limits.{field} must be between {lo} and {hi}, got {got}")]
pub struct LimitError {
    pub field: &'static str,
    pub lo: u64,
    pub hi: u64,
    pub got: u64,
}

impl Limits {
    /// Every limit within the range the node works in; the error names the field.
    pub fn check(&self) -> Result<(), LimitError> {
        let within = |field: &'static str, got: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&got) {
                Ok(())
            } else {
                Err(LimitError { field, lo, hi, got })
            }
        };
        within(
            "frame_bytes_max",
            self.frame_bytes_max as u64,
            64 * 1024,
            16 * 1024 * 1024,
        )?;
        within("connections_max", self.connections_max as u64, 1, 100_000)?;
        within(
            "streams_per_connection_max",
            u64::from(self.streams_per_connection_max),
            1,
            1024,
        )?;
        within("idle_timeout_ms", self.idle_timeout_ms, 1_000, 600_000)?;
        within(
            "handshake_timeout_ms",
            self.handshake_timeout_ms,
            1_000,
            600_000,
        )?;
        within(
            "first_frame_timeout_ms",
            self.first_frame_timeout_ms,
            100,
            600_000,
        )?;
        within(
            "stream_window_bytes",
            u64::from(self.stream_window_bytes),
            64 * 1024,
            1 << 30,
        )?;
        within(
            "connection_window_bytes",
            u64::from(self.connection_window_bytes),
            64 * 1024,
            1 << 30,
        )
    }
}

/// A transport failure, naming the peer where there is one.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("connecting to {peer}: {reason}")]
    Connect { peer: String, reason: String },
    #[error("connection lost: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("stream write: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("stream read: {0}")]
    Read(String),
    #[error("peer sent a bad frame: {0}")]
    Frame(#[from] sync::FrameError),
    #[error("peer closed the stream")]
    Closed,
    /// The peer at the address answered with another key than the pinned one: a wrong
    /// `--aggregator` key, or another node at that address.
    #[error(
        "the peer answering there is {found}, not the pinned {expected}: check the key in the address (NODEID@HOST:PORT, as in --aggregator or --from)"
    )]
    WrongPeer { expected: NodeId, found: NodeId },
}

/// `NODEID@HOST:PORT`: where a peer is and which key must answer there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    pub node_id: NodeId,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.node_id, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.node_id, self.host, self.port)
        }
    }
}

/// Why a text is not a [`PeerAddr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerAddrError {
    #[error("a peer address is NODEID@HOST:PORT, got {0:?}")]
    Shape(String),
    #[error(transparent)]
    NodeId(#[from] spindel_protocol::keys::ParseNodeIdError),
}

impl FromStr for PeerAddr {
    type Err = PeerAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PeerAddrError::Shape(s.to_string());
        let (id, rest) = s.split_once('@').ok_or_else(bad)?;
        let node_id: NodeId = id.parse()?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(PeerAddr {
            node_id,
            host: host.to_string(),
            port,
        })
    }
}

impl PeerAddr {
    /// Resolves the host to a socket address (the first one it names).
    pub async fn resolve(&self) -> Result<SocketAddr, TransportError> {
        let target = format!("{}:{}", self.host, self.port);
        let found = tokio::net::lookup_host(target.as_str())
            .await
            .ok()
            .and_then(|mut addrs| addrs.next());
        found.ok_or(TransportError::Resolve(target))
    }
}

/// The SubjectPublicKeyInfo DER of an ed25519 key: what this node presents in TLS.
pub fn spki_of(id: &NodeId) -> SubjectPublicKeyInfoDer<'static> {
    rustls::sign::public_key_to_spki(&alg_id::ED25519, id.as_bytes())
}

/// The NodeId inside an ed25519 SubjectPublicKeyInfo, if it is one.
pub fn node_id_of_spki(spki: &[u8]) -> Option<NodeId> {
    let key: [u8; 32] = spki.get(spki.len().checked_sub(32)?..)?.try_into().ok()?;
    let id = NodeId(key);
    (spki_of(&id).as_ref() == spki).then_some(id)
}

/// The authenticated NodeId of a connection's peer.
pub fn peer_id(conn: &quinn::Connection) -> Option<NodeId> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    node_id_of_spki(certs.first()?.as_ref())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certified_key(key: &SecretKey) -> Result<Arc<CertifiedKey>, TransportError> {
    // The PKCS#8 form of the key lives in a document that zeroes itself when dropped, and
    // rustls reads it borrowed (no copy of it is made). Built once per endpoint, not per dial.
    let pkcs8 = key
        .signing_key()
        .to_pkcs8_der()
        .map_err(|e| rustls::Error::General(format!("pkcs8: {e}")))?;
    let signing =
        rustls::crypto::ring::sign::any_eddsa_type(&PrivatePkcs8KeyDer::from(pkcs8.as_bytes()))?;
    let spki = spki_of(&key.node_id());
    Ok(Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(spki.as_ref().to_vec())],
        signing,
    )))
}

fn ed25519_signature_valid(
    algs: &WebPkiSupportedAlgorithms,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    if dss.scheme != SignatureScheme::ED25519 {
        return Err(rustls::Error::General("only ed25519 handshakes".into()));
    }
    verify_tls13_signature_with_raw_key(
        message,
        &SubjectPublicKeyInfoDer::from(cert.as_ref()),
        dss,
        algs,
    )
}

/// Dialer side: the server must present exactly the pinned key.
#[derive(Debug)]
struct PinnedServer {
    expected: NodeId,
    algs: WebPkiSupportedAlgorithms,
    /// The key a peer presented instead of the pinned one, for the dialer's typed error.
    mismatch: Arc<std::sync::Mutex<Option<NodeId>>>,
}

/// The handshake-signature half of both verifiers (server and client side are different
/// rustls traits with the same methods): TLS 1.3 only, ed25519 only, raw public keys only.
macro_rules! raw_ed25519_handshake {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(rustls::Error::General("TLS 1.2 is not used".into()))
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            ed25519_signature_valid(&self.algs, message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            vec![SignatureScheme::ED25519]
        }

        fn requires_raw_public_keys(&self) -> bool {
            true
        }
    };
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match node_id_of_spki(end_entity.as_ref()) {
            Some(id) if id == self.expected => Ok(ServerCertVerified::assertion()),
            Some(id) => {
                *self
                    .mismatch
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(id);
                Err(rustls::Error::General(format!(
                    "peer is {id}, not the pinned {}",
                    self.expected
                )))
            }
            None => Err(rustls::Error::General("peer key is not ed25519".into())),
        }
    }

    raw_ed25519_handshake!();
}

/// Listener side: any usable ed25519 key; admission is the sync session's decision.
#[derive(Debug)]
struct AnyEd25519Client {
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyEd25519Client {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match node_id_of_spki(end_entity.as_ref()) {
            Some(id) if id.is_usable() => Ok(ClientCertVerified::assertion()),
            _ => Err(rustls::Error::General(
                "client key is not a usable ed25519 key".into(),
            )),
        }
    }

    raw_ed25519_handshake!();
}

fn transport_config(limits: &Limits) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(limits.streams_per_connection_max.into())
        .max_concurrent_uni_streams(0u32.into())
        .stream_receive_window(limits.stream_window_bytes.into())
        .receive_window(limits.connection_window_bytes.into())
        .max_idle_timeout(
            quinn::IdleTimeout::try_from(Duration::from_millis(limits.idle_timeout_ms)).ok(),
        )
        .keep_alive_interval(Some(Duration::from_millis(
            KEEP_ALIVE_MS.min(limits.idle_timeout_ms / 3),
        )));
    Arc::new(t)
}

/// The label that separates the stateless-reset key from every other use of the node key.
const RESET_KEY_LABEL: &[u8] = b"spindel/1 QUIC stateless reset key";
/// The label of the key that signs this endpoint's connection IDs (so a restarted node
/// recognises its old ones as its own and answers them with a reset).
const CID_KEY_LABEL: &[u8] = b"spindel/1 QUIC connection id key";

/// The endpoint's QUIC configuration with a stateless-reset key derived from the node key:
/// HMAC-SHA256 keyed with the secret over a fixed label (one-way and domain-separated; never the
/// key itself). A restarted node thus answers packets of its old connections with resets the
/// peer recognises, and the peer drops the dead link at once instead of after its idle timeout.
fn endpoint_config(key: &SecretKey) -> quinn::EndpointConfig {
    use ring::hmac;
    let secret = key.to_bytes();
    let prf = hmac::Key::new(hmac::HMAC_SHA256, secret.as_slice());
    let derive = |label: &[u8]| zeroize::Zeroizing::new(hmac::sign(&prf, label).as_ref().to_vec());
    let reset = derive(RESET_KEY_LABEL);
    let cid = derive(CID_KEY_LABEL);
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&cid[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    let mut config =
        quinn::EndpointConfig::new(Arc::new(hmac::Key::new(hmac::HMAC_SHA256, &reset)));
    // Connection IDs signed (SipHash) with that key, as quinn's default generator signs them
    // with a random one.
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
            as Box<dyn quinn::ConnectionIdGenerator>
    });
    config
}

/// A QUIC endpoint speaking `spindel/1` as `key`.
#[derive(Debug, Clone)]
pub struct Transport {
    endpoint: quinn::Endpoint,
    node_id: NodeId,
    /// The TLS identity made from the node key, once: every dial presents it.
    identity: Arc<CertifiedKey>,
    limits: Limits,
}

impl Transport {
    /// Binds `addr` (port 0 picks a free port) and accepts connections.
    pub fn bind(
        key: &SecretKey,
        addr: SocketAddr,
        limits: Limits,
    ) -> Result<Transport, TransportError> {
        let provider = provider();
        let identity = certified_key(key)?;
        let algs = provider.signature_verification_algorithms;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(Arc::new(AnyEd25519Client { algs }))
            .with_cert_resolver(Arc::new(
                rustls::server::AlwaysResolvesServerRawPublicKeys::new(identity.clone()),
            ));
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = QuicServerConfig::try_from(tls)
            .map_err(|e| rustls::Error::General(format!("QUIC TLS: {e}")))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
        server.transport_config(transport_config(&limits));
        server.max_incoming(limits.connections_max);
        let endpoint = std::net::UdpSocket::bind(addr)
            .and_then(|socket| {
                quinn::Endpoint::new(
                    endpoint_config(key),
                    Some(server),
                    socket,
                    Arc::new(quinn::TokioRuntime),
                )
            })
            .map_err(|source| TransportError::Bind { addr, source })?;
        Ok(Transport {
            endpoint,
            node_id: key.node_id(),
            identity,
            limits,
        })
    }

    /// A dial-only endpoint on an ephemeral loopback-or-any port.
    pub fn client(key: &SecretKey, limits: Limits) -> Result<Transport, TransportError> {
        let addr: SocketAddr = "[::]:0"
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let client = |addr: SocketAddr| {
            // Dual-stack where the system allows, as quinn's own client endpoint does.
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            );
            socket.and_then(|socket| {
                if addr.is_ipv6() {
                    let _ = socket.set_only_v6(false);
                }
                socket.bind(&addr.into())?;
                let socket: std::net::UdpSocket = socket.into();
                quinn::Endpoint::new(
                    endpoint_config(key),
                    None,
                    socket,
                    Arc::new(quinn::TokioRuntime),
                )
            })
        };
        let endpoint = match client(addr) {
            Ok(e) => e,
            Err(_) => {
                let v4 = SocketAddr::from(([0, 0, 0, 0], 0));
                client(v4).map_err(|source| TransportError::Bind { addr: v4, source })?
            }
        };
        Ok(Transport {
            endpoint,
            node_id: key.node_id(),
            identity: certified_key(key)?,
            limits,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Dials `peer`, requiring it to present the pinned key, within the handshake timeout.
    pub async fn connect(&self, peer: &PeerAddr) -> Result<quinn::Connection, TransportError> {
        let fail = |reason: String| TransportError::Connect {
            peer: peer.to_string(),
            reason,
        };
        let provider = provider();
        let algs = provider.signature_verification_algorithms;
        let mismatch = Arc::new(std::sync::Mutex::new(None));
        let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedServer {
                expected: peer.node_id,
                algs,
                mismatch: mismatch.clone(),
            }))
            .with_client_cert_resolver(Arc::new(
                rustls::client::AlwaysResolvesClientRawPublicKeys::new(self.identity.clone()),
            ));
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = QuicClientConfig::try_from(tls).map_err(|e| fail(format!("QUIC TLS: {e}")))?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        config.transport_config(transport_config(&self.limits));
        let addr = peer.resolve().await?;
        let connecting = self
            .endpoint
            .connect_with(config, addr, "spindel")
            .map_err(|e| fail(e.to_string()))?;
        let timeout = Duration::from_millis(self.limits.handshake_timeout_ms);
        let conn = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| {
                fail(format!(
                    "no answer within {} s: is the node running, and is UDP port {} open in \
                     every firewall on the way? (QUIC runs over UDP)",
                    timeout.as_secs(),
                    peer.port
                ))
            })?
            .map_err(|e| {
                let found = *mismatch
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match found {
                    Some(found) => TransportError::WrongPeer {
                        expected: peer.node_id,
                        found,
                    },
                    None => fail(e.to_string()),
                }
            })?;
        match peer_id(&conn) {
            Some(id) if id == peer.node_id => Ok(conn),
            found => {
                conn.close(0u32.into(), b"wrong peer key");
                Err(match found {
                    Some(found) => TransportError::WrongPeer {
                        expected: peer.node_id,
                        found,
                    },
                    None => fail("peer did not present an ed25519 key".into()),
                })
            }
        }
    }

    /// The next incoming connection, handshake completed; `None` once the endpoint is closed.
    /// The next incoming connection attempt, before its handshake ([`Transport::handshake`]
    /// completes it: run that in a task of its own, so a stalled handshake holds up no other).
    pub async fn accept(&self) -> Option<quinn::Incoming> {
        self.endpoint.accept().await
    }

    /// Completes an incoming handshake within the handshake timeout; the peer's NodeId.
    pub async fn handshake(
        &self,
        incoming: quinn::Incoming,
    ) -> Result<(quinn::Connection, NodeId), TransportError> {
        let timeout = Duration::from_millis(self.limits.handshake_timeout_ms);
        let remote = incoming.remote_address();
        let conn = tokio::time::timeout(timeout, incoming)
            .await
            .map_err(|_| TransportError::Connect {
                peer: remote.to_string(),
                reason: "handshake timed out".into(),
            })?
            .map_err(TransportError::Connection)?;
        let id = peer_id(&conn).ok_or_else(|| TransportError::Connect {
            peer: conn.remote_address().to_string(),
            reason: "no ed25519 identity".into(),
        })?;
        Ok((conn, id))
    }

    /// Closes every connection and stops accepting.
    pub async fn shutdown(&self) {
        self.endpoint.close(0u32.into(), b"shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// Frames and bytes (length prefixes included) that crossed one stream.
#[derive(Debug, Default)]
pub struct Traffic {
    pub frames_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub frames_received: AtomicU64,
    pub bytes_received: AtomicU64,
}

impl Traffic {
    /// (frames sent, bytes sent, frames received, bytes received).
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.frames_sent.load(Ordering::Relaxed),
            self.bytes_sent.load(Ordering::Relaxed),
            self.frames_received.load(Ordering::Relaxed),
            self.bytes_received.load(Ordering::Relaxed),
        )
    }
}

/// The sending half of a framed stream.
#[derive(Debug)]
pub struct FramedSend {
    inner: quinn::SendStream,
    traffic: Arc<Traffic>,
}

impl FramedSend {
    pub fn new(inner: quinn::SendStream) -> Self {
        Self::with_traffic(inner, Arc::default())
    }

    /// A sender that counts into `traffic` (shared with the stream's receiver).
    pub fn with_traffic(inner: quinn::SendStream, traffic: Arc<Traffic>) -> Self {
        FramedSend { inner, traffic }
    }

    pub async fn send(&mut self, message: &Message) -> Result<(), TransportError> {
        let frame = sync::encode_frame(message);
        self.inner.write_all(&frame).await?;
        self.traffic.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.traffic
            .bytes_sent
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    pub fn finish(&mut self) {
        let _ = self.inner.finish();
    }
}

/// The receiving half of a framed stream; the only place that reads the socket.
#[derive(Debug)]
pub struct FramedRecv {
    inner: quinn::RecvStream,
    frame_bytes_max: usize,
    traffic: Arc<Traffic>,
}

impl FramedRecv {
    pub fn new(inner: quinn::RecvStream, frame_bytes_max: usize) -> Self {
        Self::with_traffic(inner, frame_bytes_max, Arc::default())
    }

    /// A receiver that counts into `traffic`.
    pub fn with_traffic(
        inner: quinn::RecvStream,
        frame_bytes_max: usize,
        traffic: Arc<Traffic>,
    ) -> Self {
        FramedRecv {
            inner,
            frame_bytes_max,
            traffic,
        }
    }

    /// The next message; `Ok(None)` at a clean end of stream between frames.
    pub async fn recv(&mut self) -> Result<Option<Message>, TransportError> {
        let mut prefix = [0u8; FRAME_PREFIX_BYTES];
        match self.inner.read_exact(&mut prefix).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
            Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(TransportError::Closed),
            Err(quinn::ReadExactError::ReadError(e)) => {
                return Err(TransportError::Read(describe(e)));
            }
        }
        let len = sync::frame_len(prefix, self.frame_bytes_max)?;
        // The buffer grows as bytes arrive: a length prefix alone reserves little, so peers
        // that announce large frames and send nothing hold no memory.
        let mut body = Vec::with_capacity(len.min(FRAME_INITIAL_BYTES));
        while body.len() < len {
            match self.inner.read_chunk(len - body.len(), true).await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk.bytes),
                Ok(None) => return Err(TransportError::Closed),
                Err(e) => return Err(TransportError::Read(describe(e))),
            }
        }
        self.traffic.frames_received.fetch_add(1, Ordering::Relaxed);
        self.traffic
            .bytes_received
            .fetch_add((FRAME_PREFIX_BYTES + len) as u64, Ordering::Relaxed);
        Ok(Some(sync::decode_body(&body)?))
    }
}

/// A read error with the peer's close reason, when it gave one.
fn describe(e: quinn::ReadError) -> String {
    match e {
        quinn::ReadError::ConnectionLost(quinn::ConnectionError::ApplicationClosed(close)) => {
            format!(
                "peer closed the connection (code {}): {}",
                close.error_code,
                String::from_utf8_lossy(&close.reason)
            )
        }
        quinn::ReadError::ConnectionLost(other) => format!("connection lost: {other}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addr_parses_and_refuses() {
        let id = SecretKey::from_bytes(&[1; 32]).node_id();
        let p: PeerAddr = format!("{id}@127.0.0.1:7700").parse().unwrap();
        assert_eq!(p.port, 7700);
        assert_eq!(p.host, "127.0.0.1");
        let v6: PeerAddr = format!("{id}@[::1]:7700").parse().unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), format!("{id}@[::1]:7700"));
        for bad in [
            "",
            "x@1.2.3.4:5",
            &format!("{id}@host"),
            &format!("{id}@:5"),
            &format!("{id}@h:0"),
            &format!("{id}1.2.3.4:5"),
        ] {
            assert!(bad.parse::<PeerAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn spki_round_trip() {
        let id = SecretKey::from_bytes(&[1; 32]).node_id();
        let spki = spki_of(&id);
        assert_eq!(spki.as_ref().len(), 44);
        assert_eq!(node_id_of_spki(spki.as_ref()), Some(id));
        let mut other = spki.as_ref().to_vec();
        other[3] ^= 1;
        assert_eq!(node_id_of_spki(&other), None);
    }
}
