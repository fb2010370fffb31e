//! The sample ParaTime's program: serves [`paratime_kvstore::KvStore`] to the host.

fn main() {
    paratime_sdk::dispatcher::run(paratime_kvstore::KvStore)
}
