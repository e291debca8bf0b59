//! The writer process of the read-only test (`tests/readonly.rs`,
//! `reader_beside_writer_process`): while the test reads the store
//! read-only, it creates the experiment `proj/run`, moves its progress from
//! 0 to 100 in STEPS steps, logs a console line and commits a version of
//! the model `m` (one file, `w.bin`, [`content`]`(SEED, step)`) per step,
//! and runs `gc` with compaction after each, on content it stored and
//! released, so that version records move and packs are deleted under the
//! reader. Prints `DONE` and exits. Built by `make test` first; not meant to
//! be run by hand.
//!
//! ```text
//! readonly_writer STORE SEED STEPS
//! ```

#[path = "../tests/common.rs"]
mod common;

use modelvault::{FileEntry, GcOptions, NewExperiment, Store, Stream};

/// The file of version `step + 1`: a few MB, deterministic from the seed.
pub fn content(seed: u64, step: u64) -> Vec<u8> {
    common::noise((2 << 20) + (step as usize) * 4099, seed * 1000 + step)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, seed, steps] = &args[..] else {
        eprintln!("usage: readonly_writer STORE SEED STEPS");
        std::process::exit(2);
    };
    let seed: u64 = seed.parse().unwrap();
    let steps: u64 = steps.parse().unwrap();
    let store = Store::options().pack_size(1 << 20).open(dir).unwrap();
    let exp = store
        .create_experiment(NewExperiment::new("proj", "run"))
        .unwrap();
    exp.start().unwrap();
    println!("EXP {}", exp.id());
    for step in 0..=steps {
        let data = content(seed, step);
        let blob = store.put_blob(&data[..]).unwrap();
        store
            .commit_version(
                "m",
                vec![FileEntry {
                    path: "w.bin".into(),
                    blob,
                    size: data.len() as u64,
                }],
            )
            .unwrap();
        store.release_blob(&blob).unwrap();
        // Scratch content sharing packs with the versions', released at
        // once: the collection compacts those packs, moving the versions'
        // records and deleting the packs.
        let scratch = store
            .put_blob(&common::noise(1 << 20, seed * 7919 + step)[..])
            .unwrap();
        store.release_blob(&scratch).unwrap();
        exp.log(Stream::Stdout, &format!("step {step}")).unwrap();
        exp.set_progress((step * 100 / steps.max(1)) as u8).unwrap();
        let r = store.gc(&GcOptions::new().compact_below(0.9)).unwrap();
        println!("STEP {step} compacted {}", r.packs_compacted);
    }
    println!("DONE");
}
