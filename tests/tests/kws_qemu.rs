//! The firmware's keyword commands under QEMU (the run-time loader build):
//! `K` (one second of raw PCM: the front end on the M4, then the model)
//! gives the host's features and potentials for a real clip, and every
//! misuse gets its status code in order: no model, a model whose input is
//! not the front end's, PCM of the wrong length, a damaged payload, class
//! names that are too long or not UTF-8. The defmt log names the keyword.

use std::path::Path;
use std::time::Duration;

use akida_core::mfcc::{self, CLIP_SAMPLES, INPUT_LEN};
use akida_core::wire::{self, Status, LABELS_MAX};
use akida_host::commands::kws_demo;
use akida_host::firmware::{self, QemuConfig, Session};
use akida_host::formats::{self, akd};
use akida_host::kws;

#[test]
fn keyword_commands_answer_like_the_host_and_refuse_misuse() {
    let model_path = kws_demo::shipped_model();
    let model = formats::load(&model_path).unwrap();
    let bytes = akd::to_bytes(&model).unwrap();
    let labels = kws::read_labels(&model_path.with_file_name("labels.txt"), &model).unwrap();
    let clips = kws::read_clips(&kws_demo::shipped_clips().join("yes")).unwrap();
    let pcm = &clips[0].pcm;
    let pcm_bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    let other = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fuzz/akd/conv_s2_w4a4.akd");

    let mut damaged = wire::frame(b'K', &pcm_bytes);
    let last = damaged.len() - 1;
    damaged[last] ^= 0x55;
    let mut s = Session::new();
    s.keyword(pcm) // 0: the embedded model (33 classes) answers
        .load(b"not a model") // 1: refused, no active model
        .keyword(pcm) // 2: no model
        .load(&std::fs::read(&other).unwrap()) // 3
        .keyword(pcm) // 4: input 49x10x1 expected
        .load(&bytes) // 5
        .labels(&labels) // 6
        .keyword(pcm) // 7: the answer
        .raw(&wire::frame(b'K', &pcm_bytes[..1000])) // 8: short PCM
        .raw(&damaged) // 9: damaged payload
        .raw(&wire::frame(b'L', &[b'a'; LABELS_MAX + 1])) // 10: too long
        .raw(&wire::frame(b'L', &[0xff, 0xfe])) // 11: not UTF-8
        .keyword(pcm) // 12: still answers (without names)
        .quit();
    let elf = firmware::qemu_firmware().unwrap();
    let mut config = QemuConfig::new(elf);
    config.timeout = Duration::from_secs(120);
    let run = firmware::run(&config, &s).unwrap();
    let statuses: Vec<Status> = run.replies.iter().map(|r| r.status).collect();
    use Status::*;
    assert_eq!(
        statuses,
        [
            Ok,
            NotAkida,
            NoModel,
            Ok,
            InputLength,
            Ok,
            Ok,
            Ok,
            InputLength,
            FrameCrc,
            InputLength,
            InputLength,
            Ok,
            Ok
        ],
        "{:?}",
        run.log
    );
    assert_eq!(run.exit, Some(0));

    let host = &kws::host_answers(&model, &clips[..1]).unwrap()[0];
    let mut features = [0u8; INPUT_LEN];
    mfcc::features(pcm, &mut features);
    assert_eq!(host.features, features);
    assert_eq!(run.replies[0].data.len(), INPUT_LEN + 4 * 33);
    assert_eq!(&run.replies[0].data[..INPUT_LEN], features);
    for reply in [&run.replies[7], &run.replies[12]] {
        assert_eq!(
            reply.detail,
            [1, (INPUT_LEN & 0xff) as u8, (INPUT_LEN >> 8) as u8]
        );
        let (f, out) = reply.data.split_at(INPUT_LEN);
        assert_eq!(f, features);
        let potentials: Vec<i32> = out
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(potentials, host.scores);
    }
    let word = &labels[host.class()];
    let named = format!("keyword: {word} (class {})", host.class());
    assert_eq!(
        run.log.iter().filter(|l| l.contains(&named)).count(),
        1,
        "{:?}",
        run.log
    );
    // Before the names and after they were cleared: the class alone.
    assert_eq!(
        run.log
            .iter()
            .filter(|l| l.contains(&format!("keyword: class {},", host.class())))
            .count(),
        1,
        "{:?}",
        run.log
    );
    assert_eq!(pcm.len(), CLIP_SAMPLES);
}
