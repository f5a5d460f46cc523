//! A TCP forwarder on 127.0.0.1 standing between a server and its
//! database, so a test can cut the link: every connection through it ends
//! at once, and new ones are refused, until it is restored.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

pub struct Forwarder {
    pub addr: SocketAddr,
    refusing: Arc<AtomicBool>,
    /// Bumped to end every connection open through it.
    cuts: watch::Sender<u64>,
}

impl Forwarder {
    /// Listens on 127.0.0.1 (any port), forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind forwarder");
        let addr = listener.local_addr().expect("addr");
        let refusing = Arc::new(AtomicBool::new(false));
        let (cuts, _) = watch::channel(0);
        let (accepting, cut) = (refusing.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                // Refused: closed before a byte of the handshake.
                if accepting.load(Ordering::SeqCst) {
                    continue;
                }
                tokio::spawn(forward(client, upstream, cut.subscribe()));
            }
        });
        Self {
            addr,
            refusing,
            cuts,
        }
    }

    /// Ends every connection through it, and refuses new ones.
    pub fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Takes new connections again.
    pub fn restore(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, mut cut: watch::Receiver<u64>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.changed() => {}
    }
}
