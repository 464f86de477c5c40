//! `hostile-panic` (test plugin): panics with a message naming the event. The SDK's
//! panic hook passes `plugin panicked at src/lib.rs:…: hostile-panic: deliberate
//! panic on evt_…` to the host (`error`); then the abort traps (`unreachable`).

use gatepulse_plugin_sdk::prelude::*;

fn transform(event: Event, _config: NoConfig) -> Result<Output, Error> {
    panic!("hostile-panic: deliberate panic on {}", event.event_id)
}

gatepulse_plugin_sdk::export_transform!(transform, name = "hostile-panic");

#[cfg(test)]
mod tests {
    use super::*;
    use gatepulse_plugin_sdk::testing;

    #[test]
    #[should_panic(expected = "hostile-panic: deliberate panic on evt_test")]
    fn it_panics_with_the_event_id() {
        let _ = testing::run(transform, &testing::event("t", json!({})), "{}");
    }
}
