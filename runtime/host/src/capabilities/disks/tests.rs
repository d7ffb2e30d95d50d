//! Unit tests of the `disks` capability on file-backed disks.

use super::*;
use crate::bindings::latest::ironic::hardware::disks::{Host as _, HostDisk};
use crate::sandbox::CallState;

/// The call state with each disk call unwrapped of its trap layer.
struct S(CallState);

impl S {
    async fn open(
        &mut self,
        name: String,
        access: Access,
    ) -> Result<Resource<DiskHandle>, DiskError> {
        HostDisk::open(&mut self.0.disks_view(), name, access)
            .await
            .expect("no trap")
    }
    async fn size(&mut self, d: Resource<DiskHandle>) -> u64 {
        HostDisk::size(&mut self.0.disks_view(), d)
            .await
            .expect("no trap")
    }
    async fn logical_sector_size(&mut self, d: Resource<DiskHandle>) -> u32 {
        HostDisk::logical_sector_size(&mut self.0.disks_view(), d)
            .await
            .expect("no trap")
    }
    async fn physical_sector_size(&mut self, d: Resource<DiskHandle>) -> u32 {
        HostDisk::physical_sector_size(&mut self.0.disks_view(), d)
            .await
            .expect("no trap")
    }
    async fn read(
        &mut self,
        d: Resource<DiskHandle>,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, DiskError> {
        HostDisk::read(&mut self.0.disks_view(), d, offset, len)
            .await
            .expect("no trap")
    }
    async fn write(
        &mut self,
        d: Resource<DiskHandle>,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<(), DiskError> {
        HostDisk::write(&mut self.0.disks_view(), d, offset, data)
            .await
            .expect("no trap")
    }
    async fn write_zeroes(
        &mut self,
        d: Resource<DiskHandle>,
        offset: u64,
        len: u64,
    ) -> Result<(), DiskError> {
        HostDisk::write_zeroes(&mut self.0.disks_view(), d, offset, len)
            .await
            .expect("no trap")
    }
    async fn discard(
        &mut self,
        d: Resource<DiskHandle>,
        offset: u64,
        len: u64,
    ) -> Result<(), DiskError> {
        HostDisk::discard(&mut self.0.disks_view(), d, offset, len)
            .await
            .expect("no trap")
    }
    async fn flush(&mut self, d: Resource<DiskHandle>) -> Result<(), DiskError> {
        HostDisk::flush(&mut self.0.disks_view(), d)
            .await
            .expect("no trap")
    }
    async fn reread_partitions(&mut self, d: Resource<DiskHandle>) -> Result<(), DiskError> {
        HostDisk::reread_partitions(&mut self.0.disks_view(), d)
            .await
            .expect("no trap")
    }
    async fn drop(&mut self, d: Resource<DiskHandle>) -> wasmtime::Result<()> {
        HostDisk::drop(&mut self.0.disks_view(), d).await
    }
    async fn erase_many(
        &mut self,
        jobs: Vec<EraseJob>,
        concurrency: u32,
    ) -> Vec<Result<(), DiskError>> {
        self.0
            .disks_view()
            .erase_many(jobs, concurrency)
            .await
            .expect("no trap")
    }
    fn disk(&mut self, h: &Resource<DiskHandle>) -> DiskHandle {
        self.0.table.get(h).expect("handle").clone()
    }
}

/// Where [`CallState::for_test`] looks for faults.
const FAULTS: &str = "faults.toml";

fn state(root: &std::path::Path, caps: &str) -> S {
    S(CallState::for_test(
        root,
        crate::Capabilities::parse(caps, "test").expect("caps"),
    ))
}

fn disk_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("dev")).expect("dev");
    std::fs::write(root.path().join("dev/sda"), vec![0xffu8; 64 * 1024]).expect("disk");
    std::fs::create_dir_all(root.path().join("sys/class/block/sda/queue")).expect("sysfs");
    std::fs::write(
        root.path()
            .join("sys/class/block/sda/queue/physical_block_size"),
        "4096\n",
    )
    .expect("pbs");
    root
}

/// Zeroing a disk image must give its blocks back: a full erase of the
/// simulated machine's sparse disks may not fill the host's disk.
#[tokio::test]
async fn write_zeroes_frees_the_blocks_of_an_image() {
    use std::os::unix::fs::MetadataExt;
    let root = disk_root();
    let path = root.path().join("dev/sda");
    std::fs::write(&path, vec![0xffu8; 4 << 20]).expect("4 MiB of data");
    let mut s = state(
        root.path(),
        "[disks]\nread=[\"/dev/*\"]\nwrite=[\"/dev/*\"]",
    );
    let d = s
        .open("/dev/sda".into(), Access::ReadWrite)
        .await
        .expect("open");
    s.write_zeroes(Resource::new_borrow(d.rep()), 0, 4 << 20)
        .await
        .expect("write-zeroes");
    s.flush(Resource::new_borrow(d.rep())).await.expect("flush");
    let meta = std::fs::metadata(&path).expect("stat");
    assert_eq!(meta.len(), 4 << 20, "size kept");
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "{} bytes still allocated after zeroing",
        meta.blocks() * 512
    );
}

#[tokio::test]
async fn write_zeroes_discard_and_bounds_on_an_image() {
    let root = disk_root();
    let mut s = state(
        root.path(),
        "[disks]\nread=[\"/dev/*\"]\nwrite=[\"/dev/*\"]",
    );
    let d = s
        .open("/dev/sda".into(), Access::ReadWrite)
        .await
        .expect("open");
    assert_eq!(s.size(Resource::new_borrow(d.rep())).await, 64 * 1024);
    assert_eq!(
        s.logical_sector_size(Resource::new_borrow(d.rep())).await,
        512
    );
    assert_eq!(
        s.physical_sector_size(Resource::new_borrow(d.rep())).await,
        4096
    );
    s.write_zeroes(Resource::new_borrow(d.rep()), 4096, 8192)
        .await
        .expect("write-zeroes");
    s.discard(Resource::new_borrow(d.rep()), 0, 4096)
        .await
        .expect("discard");
    s.write(Resource::new_borrow(d.rep()), 20000, vec![7u8; 3])
        .await
        .expect("write");
    s.flush(Resource::new_borrow(d.rep())).await.expect("flush");
    let data = s
        .read(Resource::new_borrow(d.rep()), 0, 64 * 1024)
        .await
        .expect("read");
    assert!(data[4096..12288].iter().all(|b| *b == 0), "zeroed range");
    assert!(
        data[12288..20000].iter().all(|b| *b == 0xff),
        "outside the range untouched"
    );
    assert_eq!(&data[20000..20003], &[7, 7, 7]);
    let err = s
        .write_zeroes(Resource::new_borrow(d.rep()), 60 * 1024, 8192)
        .await
        .expect_err("past the end");
    assert!(
        matches!(&err, DiskError::OutOfRange(m) if m.contains("/dev/sda")),
        "{err:?}"
    );
    assert!(matches!(
        s.read(Resource::new_borrow(d.rep()), 0, MAX_READ + 1).await,
        Err(DiskError::OutOfRange(_))
    ));
    s.drop(d).await.expect("drop");
}

#[tokio::test]
async fn read_only_handles_and_missing_disks() {
    let root = disk_root();
    let mut s = state(root.path(), "[disks]\nread=[\"/dev/*\"]");
    let d = s
        .open("/dev/sda".into(), Access::ReadOnly)
        .await
        .expect("open read-only");
    let err = s
        .write(Resource::new_borrow(d.rep()), 0, vec![1])
        .await
        .expect_err("read-only");
    assert!(
        matches!(&err, DiskError::Denied(m) if m.contains("/dev/sda")),
        "{err:?}"
    );
    assert!(matches!(
        s.open("/dev/sda".into(), Access::ReadWrite).await,
        Err(DiskError::Denied(_))
    ));
    assert!(
        matches!(s.open("/dev/sdz".into(), Access::ReadOnly).await, Err(DiskError::NotFound(m)) if m == "/dev/sdz")
    );
}

fn image_root(names: &[&str], size: usize) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("root");
    std::fs::create_dir_all(root.path().join("dev")).expect("dev");
    for name in names {
        std::fs::write(root.path().join("dev").join(name), vec![0xa5u8; size]).expect("disk");
    }
    root
}

const RW: &str = "progress=true\n[disks]\nread=[\"/dev/*\"]\nwrite=[\"/dev/*\"]";

#[tokio::test]
async fn erase_many_erases_every_disk_and_a_failing_one_stops_only_itself() {
    use crate::bindings::latest::ironic::hardware::disks::ZeroPass;
    // Odd-sized: the tail cannot go through O_DIRECT.
    let size = 3 * 1024 * 1024 + 1000;
    let root = image_root(&["sda", "sdb", "sdc"], size);
    std::fs::create_dir_all(root.path().join(".ironic-sim")).expect("sim dir");
    std::fs::write(
        root.path().join(FAULTS),
        "[[write-error]]\ndevice = \"/dev/sdb\"\nafter-bytes = 1048576\n",
    )
    .expect("faults");
    let mut s = state(root.path(), RW);
    let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = reports.clone();
    s.0.progress = std::sync::Arc::new(crate::capabilities::progress::ProgressSink::new(
        Some(std::sync::Arc::new(move |_, m: &str| {
            sink.lock().expect("lock").push(m.to_string())
        })),
        &crate::Limits::default(),
    ));
    let mut handles = Vec::new();
    for n in ["/dev/sda", "/dev/sdb", "/dev/sdc"] {
        handles.push(s.open(n.into(), Access::ReadWrite).await.expect("open"));
    }
    let jobs = handles
        .iter()
        .map(|h| EraseJob {
            disk: Resource::new_borrow(h.rep()),
            random_passes: 1,
            zeroes: ZeroPass::Cheapest,
        })
        .collect();
    let results = s.erase_many(jobs, 2).await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(
        matches!(&results[1], Err(DiskError::Io(m)) if m.contains("/dev/sdb") && m.contains("random pass 1/1") && m.contains("simulated")),
        "{results:?}"
    );
    for name in ["sda", "sdc"] {
        let data = std::fs::read(root.path().join("dev").join(name)).expect("read");
        assert_eq!(data.len(), size);
        assert!(data.iter().all(|b| *b == 0), "{name} zeroed");
    }
    let sdb = std::fs::read(root.path().join("dev/sdb")).expect("read");
    assert!(
        sdb[2 * 1024 * 1024..].iter().all(|b| *b == 0xa5),
        "sdb untouched past the fault"
    );
    let messages: Vec<String> = reports.lock().expect("lock").clone();
    let last = messages.last().expect("progress reported");
    assert!(
        last.contains("/dev/sda: erased")
            && last.contains("/dev/sdb: failed")
            && last.contains("/dev/sdc: erased"),
        "{last}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("/dev/sda: random pass 1/1")),
        "{messages:?}"
    );
    // The same handle twice is refused for the second job only.
    let twice = vec![
        EraseJob {
            disk: Resource::new_borrow(handles[0].rep()),
            random_passes: 0,
            zeroes: ZeroPass::Overwrite,
        },
        EraseJob {
            disk: Resource::new_borrow(handles[0].rep()),
            random_passes: 0,
            zeroes: ZeroPass::Overwrite,
        },
    ];
    let results = s.erase_many(twice, 4).await;
    assert!(results[0].is_ok(), "{results:?}");
    assert!(
        matches!(&results[1], Err(DiskError::Io(m)) if m.contains("more than one")),
        "{results:?}"
    );
}

#[tokio::test]
async fn erase_jobs_run_at_most_concurrency_at_a_time() {
    use crate::bindings::latest::ironic::hardware::disks::ZeroPass;
    let names = ["sda", "sdb", "sdc", "sdd", "sde"];
    let root = image_root(&names, 2 * 1024 * 1024);
    let mut s = state(root.path(), RW);
    let mut handles = Vec::new();
    for n in names {
        handles.push(
            s.open(format!("/dev/{n}"), Access::ReadWrite)
                .await
                .expect("open"),
        );
    }
    let jobs: Vec<erase::Job> = handles
        .iter()
        .map(|h| erase::Job {
            disk: s.disk(h),
            random_passes: 1,
            zeroes: ZeroPass::Overwrite,
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for concurrency in [0, 1, 2] {
        let outcome = erase::run(&jobs, concurrency, deadline, None);
        assert!(outcome.results.iter().all(Result::is_ok));
        assert!(
            (1..=concurrency.max(1) as usize).contains(&outcome.peak),
            "concurrency {concurrency}: peak {}",
            outcome.peak
        );
    }
    // A passed deadline stops every job with an error naming the disk.
    let outcome = erase::run(&jobs, 2, std::time::Instant::now(), None);
    assert!(outcome.results.iter().zip(names).all(
        |(r, n)| matches!(r, Err(DiskError::Io(m)) if m.contains(n) && m.contains("deadline"))
    ));
}

#[tokio::test]
async fn reread_partitions_is_a_no_op_on_an_image_and_needs_write_access() {
    let root = disk_root();
    let mut s = state(
        root.path(),
        "[disks]\nread=[\"/dev/*\"]\nwrite=[\"/dev/*\"]",
    );
    let rw = s
        .open("/dev/sda".into(), Access::ReadWrite)
        .await
        .expect("open");
    s.reread_partitions(Resource::new_borrow(rw.rep()))
        .await
        .expect("no-op");
    let ro = s
        .open("/dev/sda".into(), Access::ReadOnly)
        .await
        .expect("open");
    assert!(matches!(
        s.reread_partitions(Resource::new_borrow(ro.rep())).await,
        Err(DiskError::Denied(_))
    ));
}

#[tokio::test]
async fn write_faults_apply_to_write_and_write_zeroes_of_that_disk_only() {
    let root = image_root(&["sda", "sdb"], 64 * 1024);
    std::fs::create_dir_all(root.path().join(".ironic-sim")).expect("sim dir");
    std::fs::write(
        root.path().join(FAULTS),
        "[[write-error]]\ndevice = \"/dev/sda\"\nafter-bytes = 8192\n",
    )
    .expect("faults");
    let mut s = state(root.path(), RW);
    let a = s
        .open("/dev/sda".into(), Access::ReadWrite)
        .await
        .expect("open");
    let b = s
        .open("/dev/sdb".into(), Access::ReadWrite)
        .await
        .expect("open");
    s.write(Resource::new_borrow(a.rep()), 0, vec![1; 8192])
        .await
        .expect("before the fault");
    let err = s
        .write(Resource::new_borrow(a.rep()), 4096, vec![2; 8192])
        .await
        .expect_err("crosses it");
    assert!(
        matches!(&err, DiskError::Io(m) if m.contains("/dev/sda") && m.contains("simulated")),
        "{err:?}"
    );
    assert!(s
        .write_zeroes(Resource::new_borrow(a.rep()), 16384, 4096)
        .await
        .is_err());
    s.write_zeroes(Resource::new_borrow(b.rep()), 16384, 4096)
        .await
        .expect("other disk fine");
    let data = std::fs::read(root.path().join("dev/sda")).expect("read");
    assert!(
        data[4096..8192].iter().all(|x| *x == 2),
        "written up to the fault"
    );
    assert!(
        data[8192..12288].iter().all(|x| *x == 0xa5),
        "nothing past it"
    );
}

#[tokio::test]
async fn disk_names() {
    assert_eq!(validate_name("/dev/sda"), Ok("sda"));
    assert_eq!(validate_name("/dev/nvme0n1"), Ok("nvme0n1"));
    assert_eq!(validate_name("/dev/mapper/vg-root"), Ok("mapper/vg-root"));
    for bad in [
        "sda",
        "/dev/",
        "/dev/../etc/shadow",
        "/dev/a/../../x",
        "/dev/a b",
        "/dev//sda",
        "/dev/sda\0",
    ] {
        assert!(validate_name(bad).is_err(), "{bad:?} accepted");
    }
}
