//! bgpy's scenario as a psvc service: a server holding state between calls,
//! behind a token, driven by a client, that exits when told to.
//!
//! ```sh
//! TASK_SERVER_TOKEN=s3cret cargo run --example task_server
//! # prints {"port": N}; then, from another shell:
//! psvc --password s3cret call vsoa://127.0.0.1:N/init --param '{}'
//! psvc --password s3cret call vsoa://127.0.0.1:N/execute --param '{"op": "increase", "amount": 10}'
//! psvc --password s3cret call vsoa://127.0.0.1:N/execute --param '{"op": "decrease", "amount": 100}'
//! psvc --password s3cret sys children vsoa://127.0.0.1:N   # the tree: the `tasks` actor
//! psvc --password s3cret call vsoa://127.0.0.1:N/terminate --param '{}'   # {"request_count": 3, "value": 910}; the server exits
//! ```
//!
//! The token comes from the environment (`TASK_SERVER_TOKEN`) or a file
//! (`[app] token_file`), never from the command line; without one the
//! service refuses to start. It listens on `[app] listen` (default
//! 127.0.0.1:0) and prints the port. The state lives in an actor, so calls
//! are handled one at a time in arrival order: `/init` (once; value 1000),
//! `/execute` (`increase` or `decrease` by `amount`), `/state`, and
//! `/terminate`, which answers the final state and stops the service.
//! Unlike bgpy, every call has a deadline, a wrong token is refused at the
//! handshake, and a call before `/init` gets a clear error, not silence.

use actix::prelude::*;
use psvc::commander::{CommandError, Commander};
use psvc::prelude::*;
use psvc::service::{BoxError, ShutdownTrigger};
use psvc::socket::{Auth, ServerHandle};
use serde::{Deserialize, Serialize};

/// The state kept between calls.
#[derive(Debug, Default, Clone, Serialize)]
struct State {
    value: i64,
    request_count: u64,
}

#[derive(Default)]
struct Tasks {
    state: Option<State>,
}

impl Actor for Tasks {
    type Context = Context<Self>;
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Increase,
    Decrease,
}

#[derive(Debug, Deserialize)]
struct Execute {
    op: Op,
    amount: i64,
}

/// What a call asks of the state.
#[derive(Message)]
#[rtype(result = "Result<State, CommandError>")]
enum Call {
    Init,
    Execute(Execute),
    Get,
    Terminate,
}

impl Handler<Call> for Tasks {
    type Result = Result<State, CommandError>;

    fn handle(&mut self, call: Call, _: &mut Context<Self>) -> Self::Result {
        let not_yet = || CommandError::Arguments("not yet initialized: call /init first".into());
        match call {
            Call::Init => {
                if self.state.is_some() {
                    return Err(CommandError::Arguments("already initialized".into()));
                }
                let state = State {
                    value: 1000,
                    request_count: 1,
                };
                self.state = Some(state.clone());
                Ok(state)
            }
            Call::Execute(e) => {
                let state = self.state.as_mut().ok_or_else(not_yet)?;
                let delta = match e.op {
                    Op::Increase => e.amount,
                    Op::Decrease => -e.amount,
                };
                state.value = state
                    .value
                    .checked_add(delta)
                    .ok_or_else(|| CommandError::Arguments("value out of range".into()))?;
                state.request_count += 1;
                Ok(state.clone())
            }
            Call::Get => self.state.clone().ok_or_else(not_yet),
            Call::Terminate => self.state.take().ok_or_else(not_yet),
        }
    }
}

fn token(ctx: &ServiceContext) -> Result<String, BoxError> {
    if let Ok(t) = std::env::var("TASK_SERVER_TOKEN")
        && !t.is_empty()
    {
        return Ok(t);
    }
    if let Ok(path) = ctx.config().get::<String>("app.token_file") {
        let t = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let t = t.trim().to_owned();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    Err("no token: set TASK_SERVER_TOKEN or [app] token_file".into())
}

#[derive(Default)]
struct App {
    server: Option<ServerHandle>,
}

fn routes(commander: Commander, tasks: ChildRef<Tasks>, stop: ShutdownTrigger) -> Commander {
    let ask = move |call: Call| {
        let tasks = tasks.clone();
        async move {
            tasks
                .ask(call)
                .await
                .map_err(|_| CommandError::Unavailable)?
        }
    };
    let (a, b, c, d) = (ask.clone(), ask.clone(), ask.clone(), ask);
    commander
        .typed("/init", move |_: Option<serde_json::Value>, _| {
            a(Call::Init)
        })
        .typed("/execute", move |e: Execute, _| b(Call::Execute(e)))
        .typed("/state", move |_: Option<serde_json::Value>, _| {
            c(Call::Get)
        })
        .typed("/terminate", move |_: Option<serde_json::Value>, _| {
            let (d, stop) = (d.clone(), stop.clone());
            async move {
                let state = d(Call::Terminate).await?;
                stop.request();
                Ok::<_, CommandError>(state)
            }
        })
}

impl Service for App {
    async fn init(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        let token = token(ctx)?;
        let listen = ctx
            .config()
            .get::<String>("app.listen")
            .unwrap_or_else(|_| "127.0.0.1:0".into());
        let tasks = ctx.spawn(ChildSpec::new("tasks", Tasks::default)).await?;
        // ctx.commander() comes with the system commands (/sys/ping,
        // /sys/children, /sys/stats…), behind the same token.
        let commands = routes(ctx.commander(), tasks, ctx.shutdown_trigger());
        let server = ctx
            .server(Auth::password(token))
            .commands(commands.commands())
            .start(listen)
            .await?;
        println!(
            "{}",
            serde_json::json!({ "port": server.local_addr().port() })
        );
        self.server = Some(server);
        Ok(())
    }

    async fn destroy(&mut self, _: &mut ServiceContext) -> Result<(), BoxError> {
        if let Some(server) = self.server.take() {
            server.stop();
        }
        Ok(())
    }
}

fn main() -> ExitStatus {
    ServiceSystem::new("task_server")
        .args(std::env::args_os())
        .run(App::default())
}
