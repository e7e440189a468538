"""All configuration, read from SIDEBYSIDE_* environment variables.

Every field has its unit in its name and a line in the README's settings
table (tests/test_settings.py fails when one is missing).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.resources import LESSONS
from sandbox.limits import Limits
from sandbox.remote.signing import MIN_SECRET_CHARS, Signer
from sandbox.reserve import default_memory_mb, total_ram_mb

# The checkout's top (tests and tools); the app's own folders are in app.resources.
ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIDEBYSIDE_")

    host: str = Field("127.0.0.1", description="Address the server listens on.")
    port: int = Field(8000, description="Port the server listens on.")
    data_dir: Path = Field(Path("./data"), description="SQLite database and run caches.")
    packs_dir: Path = Field(LESSONS, description="Folder searched for lesson packs.")
    pool_size: int = Field(
        default_factory=lambda: os.cpu_count() or 2,
        description="Runs executed at once.",
    )
    queue_size: int = Field(64, description="Runs that may wait for a slot before 429.")
    queue_per_learner: int = Field(
        4, ge=1, description="Runs one learner (cookie, else address) may have waiting.")
    queue_per_address: int = Field(
        32, ge=1, description=(
            "Runs one client address may have waiting, whatever learner ids it sends; "
            "a class behind one NAT or proxy shares it."))
    spares_memory_mb: int = Field(
        default_factory=lambda: default_memory_mb(total_ram_mb()), ge=64, description=(
            "Memory for the reserve of ready spares, split between the frameworks by "
            "recent demand; default: a 32nd of RAM, 256-2048 MiB."))
    run_timeout_s: float = Field(10.0, description="Default wall-time limit of one run.")
    run_max_timeout_s: float = Field(60.0, description="Largest timeout_s a request may ask for.")
    run_cpu_s: int = Field(20, description="CPU-time limit of one run, all threads together.")
    run_cpus: float = Field(
        2.0, gt=0, description=(
            "Cores one run may use at once: a cgroup CPU quota where the server runs as "
            "root on a host with the CPU controller."))
    run_memory_mb: int = Field(
        2048, description="Memory limit of one run (RLIMIT_DATA, and a cgroup where possible).")
    run_processes: int = Field(128, description="Processes and threads one run may have.")
    run_output_kb: int = Field(
        256, description="stdout/stderr kept per stream before the run ends.")
    run_file_size_mb: int = Field(
        16, description="Largest file a run may write in its scratch dir.")
    port_timeout_s: float = Field(
        300.0, gt=0, description=(
            "Wall-time limit of one port (a Keras model to PyTorch, proof and ONNX check "
            "included): a run of its own, with room for ResNet50."))
    port_memory_mb: int = Field(
        8192, ge=512, description="Memory limit of one port (RLIMIT_DATA, and a cgroup).")
    port_file_size_mb: int = Field(
        1024, ge=16, description=(
            "Largest archive a port may write back (model.py, weights, report); each "
            "file in it is capped again on the trusted side."))
    port_scratch_mb: int = Field(
        2048, ge=64, description="Size of a port's private tmpfs (ONNX exports, its files).")
    port_upload_mb: int = Field(
        300, ge=1, description=(
            "Largest model file (.keras or .h5) a port may upload; a bigger one is refused "
            "(413) as soon as its upload passes this."))
    port_inputs_mb: int = Field(
        64, ge=1, description=(
            "Largest inputs file (.npy or .npz) a port may be given to prove the model on "
            "besides its seeded inputs; a bigger one is refused (413)."))
    run_gpu_memory_mb: int = Field(
        4096, ge=64, description=(
            "GPU memory one run's allocator may take, per framework (TF's logical device "
            "limit, torch's per-process fraction); GPU hosts only."))
    gpu_device: int = Field(
        0, ge=-1, description=(
            "The GPU runs see: N of /dev/nvidiaN (one per pool; -1: none, even on a GPU host)."))
    gpu_mig_instance: str = Field(
        "", pattern=r"^(\d+/\d+)?$", description=(
            "On a MIG-partitioned GPU, the one instance runs see, as GI/CI (`nvidia-smi mig "
            "-lci`); empty: every instance of that GPU. One pool per instance."))
    gpu_runs_per_device: int = Field(
        1, ge=1, description="Runs at once on the GPU: on a GPU host, the pool's slots.")
    gpu_spares: int = Field(
        8, ge=2, description="Ready spares at most on a GPU host (each holds a CUDA context).")
    class_max_learners: int = Field(
        200, ge=1, description="Learners one live class may seat; joins beyond it get 409.")
    class_joins_per_minute: int = Field(
        60, ge=1, description=(
            "Join attempts one client address may make per minute (right code or wrong); "
            "a classroom behind one NAT joins from one address."))
    class_joins_per_class_per_minute: int = Field(
        120, ge=1, description=(
            "Learners one class may seat per minute, from every address together; "
            "joins beyond it get 429."))
    classes_per_address_per_hour: int = Field(
        10, ge=1, description="Classes one client address may start per hour; more get 429.")
    sse_streams_per_address: int = Field(
        128, ge=1, description=(
            "Event streams (dashboards, learners' class banners) one client address may "
            "hold open; a class behind one NAT shares it."))
    sse_streams_per_token: int = Field(
        6, ge=1, description=(
            "Event streams one instructor or learner token may hold open (tabs, screens)."))
    pack_max_lessons: int = Field(
        50, ge=1, description="Lessons an uploaded pack may have; more is refused (422).")
    pack_max_steps_per_lesson: int = Field(
        40, ge=1, description="Steps one lesson of an uploaded pack may have; more is refused.")
    reload_packs: bool = Field(
        False, description=("Watch the packs folder: re-read the packs on every change and "
                            "refresh open pages (an author's live preview)."))
    admin_token: SecretStr | None = Field(
        None, description=("Administrator's token: publishes uploaded packs to everyone's "
                           "list (Authorization: Bearer). Unset: nobody can publish."))
    broker_url: str | None = Field(
        None, description=("Redis URL of the run queue (redis://host:6379/0). Set: runs go to "
                           "remote workers (`sidebyside worker`); unset: the in-process pool."))
    worker_secret: SecretStr | None = Field(
        None, description=("The secret every web server and worker shares (16 characters or "
                           "more); required with a broker: heartbeats and results are "
                           "signed with it, and anything unsigned is refused."))
    worker_max_slots: int = Field(
        64, ge=1, le=256, description="Slots one remote worker may claim in its heartbeat.")
    onednn_precompile: bool = Field(
        True, description=("TensorFlow's template generates oneDNN's matmul kernels once for "
                           "every spare; false: each spare generates its own at its first "
                           "matmul (≈ 35 ms of CPU), as TensorFlow does."))
    insecure_no_sandbox: bool = Field(
        False, description="Run snippets without isolation (development only; flagged everywhere)."
    )

    @model_validator(mode="after")
    def _brokers_need_a_secret(self) -> Settings:
        if self.broker_url and (self.worker_secret is None
                                or len(self.worker_secret.get_secret_value()) < MIN_SECRET_CHARS):
            raise ValueError(f"SIDEBYSIDE_WORKER_SECRET (at least {MIN_SECRET_CHARS} characters, "
                             "the same on every web server and worker) is required with "
                             "SIDEBYSIDE_BROKER_URL")
        return self

    def worker_signer(self) -> Signer:
        assert self.worker_secret is not None, "checked when the settings were read"
        return Signer(self.worker_secret.get_secret_value())

    def limits(self) -> Limits:
        return Limits(
            wall_s=self.run_timeout_s,
            cpu_s=self.run_cpu_s,
            cpus=self.run_cpus,
            memory_mb=self.run_memory_mb,
            processes=self.run_processes,
            file_size_mb=self.run_file_size_mb,
            output_bytes=self.run_output_kb * 1024,
            max_timeout_s=self.run_max_timeout_s,
            gpu_device=self.gpu_device,
            gpu_mig_instance=self.gpu_mig_instance,
            gpu_memory_mb=self.run_gpu_memory_mb,
            gpu_runs_per_device=self.gpu_runs_per_device,
            gpu_spares=self.gpu_spares,
            onednn_precompile=self.onednn_precompile,
            port_wall_s=self.port_timeout_s,
            port_memory_mb=self.port_memory_mb,
            port_file_size_mb=self.port_file_size_mb,
            port_scratch_mb=self.port_scratch_mb,
        )
