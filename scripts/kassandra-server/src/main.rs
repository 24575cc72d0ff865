//! `kassandra --addr 127.0.0.1:9042`: an in-memory, single-node CQL v4 server
//! (the `kassandra` crate's engine) for the ScyllaDB hot tier's tests.
//!
//! Every connection's requests go to one shared session, one at a time.
//! Beyond serving the engine: a request that does not parse is answered with
//! a CQL error (instead of closing the connection); a prepared statement's
//! bind metadata lists its bind markers only (the engine also lists the
//! columns a statement compares with literals, e.g. the drivers' own
//! `SELECT … FROM system.local WHERE key='local'`, which the scylla driver
//! then refuses to execute); the listening address is printed once bound
//! (tests wait for it); nothing is persisted (state lives until the process
//! ends).
//!
//! `--version` names this program's revision (`r2`): scripts/install-test-deps.sh
//! rebuilds the cached binary when it changes.

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use kassandra::cql::query::{QueryString, QueryValue};
use kassandra::error::DbError;
use kassandra::frame::request::Request;
use kassandra::frame::response::result::{PartitionKeyIndex, QueryResult};
use kassandra::frame::response::{error::Error, Response};
use kassandra::frame::{request_stream, response_sink};
use kassandra::KassandraSession;
use tokio::net::{TcpListener, TcpStream};

type Session = Arc<Mutex<KassandraSession>>;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut addr = String::from("127.0.0.1:9042");
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => addr = args.next().expect("--addr needs a value"),
            "--version" => {
                println!("kassandra-server r2 (kassandra 0.14.0, in memory, CQL v4)");
                return;
            }
            other => {
                eprintln!("unknown argument {other}; usage: kassandra [--addr HOST:PORT] [--version]");
                std::process::exit(2);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    rt.block_on(serve(addr));
}

async fn serve(addr: String) {
    let listener = TcpListener::bind(&addr).await.unwrap_or_else(|e| panic!("binding {addr}: {e}"));
    println!("kassandra listening on {}", listener.local_addr().expect("local addr"));
    let session: Session = Arc::new(Mutex::new(KassandraSession::new()));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(client(Arc::clone(&session), stream));
                }
            }
            _ = tokio::signal::ctrl_c() => return,
        }
    }
}

async fn client(session: Session, mut stream: TcpStream) {
    let (read, write) = stream.split();
    let mut requests = request_stream(read);
    let mut responses = response_sink(write);
    while let Some(Ok((frame, opcode, data))) = requests.next().await {
        let response = if frame.version.is_unsupported() {
            Response::unsupported_version()
        } else {
            match Request::deserialize(opcode, &data, frame.flags) {
                Ok(request) => answer(&session, request),
                Err(e) => Response::Error(e),
            }
        };
        if responses.send((response, frame.stream)).await.is_err() {
            return;
        }
    }
}

fn answer(session: &Session, request: Request<'_>) -> Response {
    let result = match request {
        Request::StartUp(_) | Request::Register { .. } => return Response::Ready,
        Request::Options => return Response::options(),
        Request::AuthResponse => {
            return Response::Error(Error::new(DbError::ProtocolError, "authentication is not supported"))
        }
        other => other,
    };
    // The engine panics on a few statements it does not implement (e.g.
    // `CREATE TYPE`): answer those with a server error and keep serving.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut s = session.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match result {
            Request::Query(q) => s.process(q),
            Request::Prepare(q) => {
                let binds = bind_markers(&q);
                s.prepare(q).map(|r| only_bind_markers(r, binds))
            }
            Request::Execute(e) => s.execute(e),
            Request::Batch(b) => s.process_batch(b),
            _ => unreachable!("answered above"),
        }
    }));
    match result {
        Ok(Ok(r)) => Response::Result(r),
        Ok(Err(e)) => Response::Error(e),
        Err(_) => Response::Error(Error::new(DbError::ServerError, "the in-memory engine panicked on this request")),
    }
}

/// Per value position of a statement (where clause, or insert values), true
/// where it is a bind marker.
fn bind_markers(q: &QueryString) -> Option<Vec<bool>> {
    let values: Vec<&QueryValue> = match q {
        QueryString::Select(s) => s.r#where.statements.iter().map(|(_, v)| v).collect(),
        QueryString::Delete(d) => d.r#where.statements.iter().map(|(_, v)| v).collect(),
        QueryString::Insert(i) => i.values.iter().collect(),
        _ => return None,
    };
    Some(values.into_iter().map(|v| matches!(v, QueryValue::Blankslate)).collect())
}

/// The engine's prepared metadata has a column per value position; keep the
/// bind markers' and renumber the partition key indexes to bind positions.
fn only_bind_markers(r: QueryResult, binds: Option<Vec<bool>>) -> QueryResult {
    let (mut p, binds) = match (r, binds) {
        (QueryResult::Prepared(p), Some(binds)) => (p, binds),
        (other, _) => return other,
    };
    let md = &mut p.prepared_metadata;
    if md.col_specs.len() != binds.len() || binds.iter().all(|b| *b) {
        return QueryResult::Prepared(p);
    }
    let mut position = Vec::with_capacity(binds.len());
    let mut n = 0u16;
    for &b in &binds {
        position.push(b.then_some(n));
        n += u16::from(b);
    }
    let specs = std::mem::take(&mut md.col_specs);
    md.col_specs = specs.into_iter().zip(&binds).filter(|(_, b)| **b).map(|(c, _)| c).collect();
    let keys = std::mem::take(&mut md.pk_indexes);
    md.pk_indexes = keys
        .into_iter()
        .filter_map(|k| {
            let index = position.get(usize::from(k.index)).copied().flatten()?;
            Some(PartitionKeyIndex { index, sequence: k.sequence })
        })
        .collect();
    QueryResult::Prepared(p)
}
