//! MMIO callbacks (`Install::on_mmio`) and the mmio-override plugin on the
//! bare-metal guest, which loads a 32-bit register at 0xfe000000, where the
//! pc machine maps no device, stores 0x10 to the local APIC's task
//! priority register (TPR, 0xfee00080) and reads it back, then stores 0;
//! and, in its multi-vCPU workload, loads the register at 0xfe000000
//! 1000 times on every vCPU at once, counting the loads that returned
//! 0x600dcafe (guest.c).

use xplugin_tests::guests::system::PATH as KERNEL;
use xplugin_tests::guests::user::PATH as TARGETS;
use xplugin_tests::{run_user, Qemu, Run};

/// isa-debug-exit status of a guest whose main() returned 0. A panic in
/// a plugin also ends QEMU with status 1: those tests check the output.
const PASSED: i32 = 1;

/// Loads of 0xfe000000 by each vCPU during the workload (guest.c).
const MMIO_LOADS: u64 = 1000;

/// The value the guest counts (guest.c's MMIO_VALUE).
const VALUE: &str = "0x600dcafe";

/// The rule that serves it.
fn load_rule() -> String {
    format!("load=0xfe000000={VALUE}")
}

/// How many of its loads of 0xfe000000 vCPU `cpu` counted as `VALUE`.
fn guest_hits(run: &Run, cpu: u64) -> u64 {
    let prefix = format!("cpu {cpu}: ");
    let suffix = format!(" of {MMIO_LOADS} loads of 0xfe000000 returned {VALUE}");
    run.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.strip_suffix(&suffix))
        .unwrap_or_else(|| panic!("no MMIO line for cpu {cpu}:\n{run:#?}"))
        .parse()
        .expect("a count")
}

/// Checks each of `vcpus` vCPUs finished the workload.
fn assert_all_finished(run: &Run, vcpus: u64) {
    run.assert_stdout_line(&format!("vCPUs that ran the workload: {vcpus} of {vcpus}"));
    for cpu in 0..vcpus {
        run.assert_stdout_line(&format!(
            "cpu {cpu}: 100000 calls of compute(5) summed to 1000000"
        ));
    }
}

#[test]
fn without_a_plugin_the_unassigned_register_reads_0_and_the_tpr_keeps_0x10() {
    let run = Qemu::system(KERNEL, 4).run();
    run.assert_code(PASSED)
        .assert_stdout_line("unassigned 0xfe000000 = 0x0")
        .assert_stdout_line("TPR after storing 0x10 = 0x10");
    assert_all_finished(&run, 4);
    for cpu in 0..4 {
        assert_eq!(guest_hits(&run, cpu), 0, "{run:#?}");
    }
}

/// On 4 vCPUs at once, every load of the unassigned register returns the
/// plugin's value (QEMU calls the callback from each vCPU's thread, with
/// the BQL held), and the plugin counted exactly the guest's loads: the
/// one in main() and each vCPU's 1000. The store of 0x10 to the TPR
/// stores 0x20; the store of 0 after it passes unchanged.
#[test]
fn mmio_override_serves_loads_and_changes_stores_on_four_vcpus() {
    let run = Qemu::system(KERNEL, 4)
        .plugin(&format!(
            "mmio-override,{},store=0xfee00080=0x10:0x20",
            load_rule()
        ))
        .run();
    run.assert_code(PASSED)
        .assert_stdout_line(&format!("unassigned 0xfe000000 = {VALUE}"))
        .assert_stdout_line("TPR after storing 0x10 = 0x20")
        .assert_stdout_line("message: hello");
    assert_all_finished(&run, 4);
    let mut guest_total = 1; // main()'s load
    for cpu in 0..4 {
        let hits = guest_hits(&run, cpu);
        assert_eq!(hits, MMIO_LOADS, "vcpu {cpu}:\n{run:#?}");
        guest_total += hits;
    }
    let served = run.log_numbers(&format!("mmio-override: {}: ", load_rule()));
    assert_eq!(served, [guest_total], "{run:#?}");
    assert_eq!(guest_total, 4001);
    let store = run.log_numbers("mmio-override: store=0xfee00080=0x10:0x20: ");
    assert_eq!(store, [1, 2], "1 store changed, 2 seen:\n{run:#?}");
}

/// trace=on logs each access with the vCPU, address, size, direction,
/// unassigned or device, and the value; one line per load served.
#[test]
fn mmio_override_traces_each_access() {
    let run = Qemu::system(KERNEL, 1)
        .plugin(&format!(
            "mmio-override,{},store=0xfee00080=0x10:0x20,trace=on",
            load_rule()
        ))
        .run();
    run.assert_code(PASSED)
        .assert_log_contains(&format!(
            "mmio-override: vcpu 0 load 0xfe000000 4 bytes unassigned: served {VALUE} ({})\n",
            load_rule()
        ))
        .assert_log_contains(
            "mmio-override: vcpu 0 store 0xfee00080 4 bytes device: 0x10 changed to 0x20 \
             (store=0xfee00080=0x10:0x20)\n",
        )
        .assert_log_contains(
            "mmio-override: vcpu 0 load 0xfee00080 4 bytes device: passed \
             (store=0xfee00080=0x10:0x20)\n",
        )
        .assert_log_contains(
            "mmio-override: vcpu 0 store 0xfee00080 4 bytes device: 0x0 passed \
             (store=0xfee00080=0x10:0x20)\n",
        );
    let traced = run
        .log
        .lines()
        .filter(|l| l.contains(" load 0xfe000000 4 bytes unassigned: served "))
        .count() as u64;
    assert_eq!(traced, 1 + MMIO_LOADS, "{run:#?}");
    assert_eq!(
        run.log_numbers(&format!("mmio-override: {}: ", load_rule())),
        [traced]
    );
}

/// drop= drops both of the guest's stores to the TPR: it keeps its value
/// from reset, 0.
#[test]
fn mmio_override_drops_stores() {
    let run = Qemu::system(KERNEL, 1)
        .plugin("mmio-override,drop=0xfee00080+4")
        .run();
    run.assert_code(PASSED)
        .assert_stdout_line("TPR after storing 0x10 = 0x0")
        .assert_stdout_line("unassigned 0xfe000000 = 0x0");
    assert_eq!(
        run.log_numbers("mmio-override: drop=0xfee00080+4: "),
        [2],
        "2 stores dropped:\n{run:#?}"
    );
}

/// A load rule and a drop rule on one existing device register hide it:
/// loads return the rule's value, stores never reach the device.
#[test]
fn mmio_override_hides_a_device_register() {
    Qemu::system(KERNEL, 1)
        .plugin("mmio-override,load=0xfee00080=0x55,drop=0xfee00080")
        .run()
        .assert_code(PASSED)
        .assert_stdout_line("TPR after storing 0x10 = 0x55")
        .assert_log_contains("mmio-override: load=0xfee00080=0x55: 1 loads served\n")
        .assert_log_contains("mmio-override: drop=0xfee00080: 2 stores dropped\n");
}

/// QEMU refuses the plugin with its message on standard error, exits
/// with status 1 and does not start the guest.
fn refused_in_system_mode(args: &str, message: &str) {
    let run = Qemu::system(KERNEL, 1)
        .plugin(&format!("mmio-override,{args}"))
        .run();
    run.assert_code(1)
        .assert_stderr_contains(&format!("mmio-override: {message}\n"));
    assert!(
        run.stdout.is_empty(),
        "the guest must not run: {args}\n{run:#?}"
    );
}

#[test]
fn bad_mmio_override_arguments_are_named() {
    refused_in_system_mode(
        "load=0xfe000000+8=1,load=0xfe000004=2",
        "rules load=0xfe000000+8=1 and load=0xfe000004=2 overlap at 0xfe000004: \
         both act on loads; give each address one rule",
    );
    refused_in_system_mode(
        "store=0xfee00080=0x10:0x20,drop=0xfee00080+4",
        "rules store=0xfee00080=0x10:0x20 and drop=0xfee00080+4 overlap at 0xfee00080: \
         both act on stores; give each address one rule",
    );
    refused_in_system_mode(
        "drop=0xfee00080+0",
        "argument drop='0xfee00080+0': LEN is 0: the range is empty",
    );
    refused_in_system_mode(
        "drop=0xffffffffffffffff+2",
        "argument drop='0xffffffffffffffff+2': 0xffffffffffffffff+0x2 goes past the end \
         of the 64-bit address space",
    );
    refused_in_system_mode(
        "load=0xfe000000=lots",
        "argument load='0xfe000000=lots': VALUE 'lots': expected an integer from 0 to \
         18446744073709551615 (decimal or 0x hexadecimal)",
    );
    refused_in_system_mode(
        "load=0xfe00zz00=1",
        "argument load='0xfe00zz00=1': ADDR '0xfe00zz00': expected an integer from 0 to \
         18446744073709551615 (decimal or 0x hexadecimal)",
    );
    refused_in_system_mode(
        "store=0xfee00080=0x10",
        "argument store='0xfee00080=0x10': expected ADDR[+LEN]=FROM:TO",
    );
    refused_in_system_mode(
        "trace=on",
        "nothing to override: give load=ADDR[+LEN]=VALUE, store=ADDR[+LEN]=FROM:TO \
         or drop=ADDR[+LEN]",
    );
}

/// User mode has no devices: the SDK says so, naming the range.
#[test]
fn mmio_callbacks_are_refused_in_user_mode() {
    let run = run_user(&["mmio-override,load=0xfe000000+4=1"], TARGETS);
    run.assert_code(1).assert_stderr_contains(
        "mmio-override: MMIO range 0xfe000000..0xfe000004: user-mode emulation has no \
         devices (MMIO callbacks need system emulation)\n",
    );
}

/// A callback may read the device it interposes on (the physical memory
/// API does not call MMIO callbacks, and takes no second BQL) and complete
/// the load with a changed value; registers are refused there.
#[test]
fn an_mmio_callback_reads_the_device_and_changes_its_value() {
    let run = Qemu::system(KERNEL, 1)
        .plugin("features,do=mmio-device")
        .run();
    run.assert_code(PASSED)
        .assert_stdout_line("TPR after storing 0x10 = 0x110")
        .assert_log_contains(
            "features: vcpu 0 load 0xfee00080 4 bytes: the device said 0x10, returned 0x110\n",
        )
        .assert_log_contains("features: register read refused: NotAllowed\n")
        .assert_log_contains("features: asid known: true\n");
}

/// PerVcpu::for_each waits for every vCPU's value; in an MMIO callback,
/// where QEMU holds the BQL, a vCPU inside PerVcpu::with may be waiting for
/// that lock (a read_physical of a device): the SDK refuses, naming it,
/// rather than risk a hang that not even a signal ends.
#[test]
fn per_vcpu_for_each_is_refused_in_an_mmio_callback() {
    let run = Qemu::system(KERNEL, 1)
        .plugin("misbehave,do=for-each-in-mmio")
        .run();
    run.assert_code(1).assert_stderr_contains(
        "misbehave: panic: PerVcpu::for_each in an MMIO callback: QEMU holds the BQL there",
    );
    assert!(
        run.stdout.ends_with("unassigned 0xfe000000 = "),
        "the guest went on:\n{run:#?}"
    );
}

/// A panic in an MMIO callback ends QEMU at once, with the message, as in
/// every callback: the guest never sees the load's value.
#[test]
fn a_panic_in_an_mmio_callback_stops_qemu() {
    let run = Qemu::system(KERNEL, 1)
        .plugin("misbehave,do=panic-in-mmio")
        .run();
    run.assert_code(1)
        .assert_stdout_line("syscall 7(5) = 1005")
        .assert_stderr_contains("misbehave: panic: deliberate panic in an MMIO callback at ")
        .assert_stderr_contains("; stopping QEMU");
    // The guest printed the line's start, not the value it never loaded.
    assert!(
        run.stdout.ends_with("unassigned 0xfe000000 = "),
        "the guest went on:\n{run:#?}"
    );
}
