//! A VSOA-compatible server and a robot client in one service.
//!
//! Run it with `cargo run --example network` (no config file needed). It
//! serves on 127.0.0.1:3001 (set `PSVC_SERVER__LISTEN=127.0.0.1:PORT` to
//! move it) with the password `demo`, so any VSOA client can connect, e.g.
//! `python -c "import vsoa; c = vsoa.Client(); print(c.connect('vsoa://127.0.0.1:3001', 'demo'))"`.
//!
//! The listener is a supervised child: the service restarts it after a
//! crash. A robot client in the same service connects, subscribes to
//! `/sensors/`, and keeps pinging; the server logs each client that comes
//! and goes and pushes a reading to every session that subscribed. After
//! 5 s the service stops itself (`PSVC_DEMO__RUN_FOR=0` runs until Ctrl-C).

use std::time::Duration;

use psvc::client::{Client, ClientMessage, ClientOptions, Robot};
use psvc::frame::{Frame, Kind};
use psvc::prelude::*;
use psvc::service::BoxError;
use psvc::socket::{Auth, ClientEvent, ListSessions, Listener, Server, ServerOptions};

/// Logs what the server and the client see.
struct Observer;

impl Actor for Observer {
    type Context = Context<Self>;
}

impl Handler<ClientEvent> for Observer {
    type Result = ();
    fn handle(&mut self, event: ClientEvent, _: &mut Context<Self>) {
        match event {
            ClientEvent::Connected(info) => {
                tracing::info!(id = info.id, peer = %info.peer, "client connected")
            }
            ClientEvent::Disconnected { info, reason } => {
                tracing::info!(id = info.id, %reason, "client disconnected");
            }
            ClientEvent::Subscribed { id, url } => tracing::info!(id, %url, "subscribed"),
            ClientEvent::Unsubscribed { id, url } => tracing::info!(id, %url, "unsubscribed"),
        }
    }
}

impl Handler<ClientMessage> for Observer {
    type Result = ();
    fn handle(&mut self, message: ClientMessage, _: &mut Context<Self>) {
        match message {
            ClientMessage::Published { frame: f, .. } => {
                tracing::info!(url = ?f.url_str(), param = %String::from_utf8_lossy(&f.param), "client got a publish");
            }
            other => tracing::info!(?other, "client"),
        }
    }
}

struct Network {
    listener: Option<ChildRef<Listener>>,
    client: Option<Client>,
}

impl Service for Network {
    async fn init(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        let listen = ctx
            .config()
            .get::<String>("server.listen")
            .unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
        // Options from a [server] section of psvc.conf, defaults otherwise.
        let options: ServerOptions = ctx.config().section("server").unwrap_or_default();
        let observer = Observer.start();
        let server = Server::new(Auth::password("demo"))
            .info(serde_json::json!({"name": "network-demo"}))
            .options(options)
            .on_client(observer.clone().recipient());
        let listener = ctx
            .spawn(server.child_spec("listener", listen.clone()))
            .await?;
        let robot = Robot::default().ping(Duration::from_millis(500), 3);
        let client =
            Client::connect(ClientOptions::new(listen).password("demo").robot(robot)).await?;
        client.on_message(observer.recipient()).await?;
        client.subscribe(["/sensors/"]).await?;
        self.listener = Some(listener);
        self.client = Some(client);
        Ok(())
    }

    async fn run(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        let run_for = ctx
            .config()
            .get::<String>("demo.run_for")
            .unwrap_or_else(|_| "5s".to_owned());
        let run_for = humantime::parse_duration(&run_for)?;
        let deadline = tokio::time::Instant::now() + run_for;
        let mut reading = 20.0;
        loop {
            tokio::select! {
                () = ctx.shutdown_requested() => break,
                () = tokio::time::sleep_until(deadline), if !run_for.is_zero() => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            reading += 0.5;
            let Some(listener) = &self.listener else {
                break;
            };
            for session in listener.ask(ListSessions).await? {
                if session
                    .info()
                    .subscriptions
                    .iter()
                    .any(|s| "/sensors/temp".starts_with(s.as_str()))
                {
                    let _ = session.send(
                        Frame::new(Kind::Publish)
                            .url("/sensors/temp")
                            .param(serde_json::json!({ "celsius": reading }).to_string()),
                    );
                }
            }
            if let Some(client) = &self.client {
                match client.ping().await {
                    Ok(rtt) => tracing::info!(?rtt, "ping"),
                    Err(e) => tracing::warn!("ping: {e}"),
                }
            }
        }
        Ok(())
    }

    async fn destroy(&mut self, _: &mut ServiceContext) -> Result<(), BoxError> {
        if let Some(client) = self.client.take() {
            client.close();
        }
        Ok(())
    }
}

fn main() -> ExitStatus {
    ServiceSystem::new("network")
        .args(std::env::args_os())
        .run(Network {
            listener: None,
            client: None,
        })
}
