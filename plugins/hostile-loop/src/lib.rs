//! `hostile-loop` (test plugin): a valid ABI v1 plugin that reads its input and never
//! returns. The host must stop it with fuel or the epoch deadline.

use gatepulse_plugin_sdk::prelude::*;

fn transform(_event: Event, _config: NoConfig) -> Result<Output, Error> {
    let mut spins: u64 = 0;
    loop {
        // `black_box` keeps the loop doing work the optimizer cannot remove.
        spins = std::hint::black_box(spins.wrapping_add(1));
    }
}

gatepulse_plugin_sdk::export_transform!(transform, name = "hostile-loop");
