from pulsar.jobs.state import JobRecord, JobState
from pulsar.jobs.store import JobStore
from pulsar.protocol import Status


def test_records_survive_a_new_store(tmp_path):
    store = JobStore(tmp_path)
    store.save(JobRecord("1", JobState.RUNNING, attempts=1, backend={"pid": 5}))
    store.save(JobRecord("2", JobState.COMPLETE))
    again = JobStore(tmp_path)
    assert [r.job_id for r in again.active()] == ["1"]
    assert again.load("1").backend == {"pid": 5}
    assert again.load("2").state is JobState.COMPLETE


def test_terminal_save_leaves_the_active_set(tmp_path):
    store = JobStore(tmp_path)
    record = JobRecord("1", JobState.QUEUED)
    store.save(record)
    record.state = JobState.FAILED
    store.save(record)
    assert store.active() == []
    assert not (tmp_path / "active" / "1.json").exists()


def test_crash_between_the_two_steps_prefers_the_finished_record(tmp_path):
    store = JobStore(tmp_path)
    store.save(JobRecord("1", JobState.RUNNING))
    (tmp_path / "finished" / "1.json").write_text(JobRecordJson.complete("1"))
    assert store.active() == []
    assert store.load("1").state is JobState.COMPLETE


def test_unreadable_record_is_skipped(tmp_path):
    store = JobStore(tmp_path)
    (tmp_path / "active" / "bad.json").write_text("{not json")
    store.save(JobRecord("ok", JobState.QUEUED))
    assert [r.job_id for r in store.active()] == ["ok"]


def test_memory_store(tmp_path):
    store = JobStore(None)
    store.save(JobRecord("1", JobState.QUEUED))
    assert store.load("1").state is JobState.QUEUED
    store.delete("1")
    assert store.load("1") is None


def test_every_state_maps_to_one_status():
    assert {s.status for s in JobState} == set(Status)
    assert [s for s in JobState if s.terminal] == [JobState.COMPLETE, JobState.CANCELLED, JobState.FAILED, JobState.LOST]


class JobRecordJson:
    @staticmethod
    def complete(job_id: str) -> str:
        import json

        return json.dumps(JobRecord(job_id, JobState.COMPLETE).to_json())
