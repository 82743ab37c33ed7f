"""The workflow on a cluster: lint, per-step resources from the workflow profiles, and the SLURM
profile (a dry run, and a whole run through the SLURM executor plugin against stand-ins for the
SLURM commands)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.workflow_helpers import snakemake_cmd, write_tiny_config

PROFILE = REPO / "workflows" / "profiles" / "slurm"
DEFAULT_PROFILE = REPO / "workflows" / "profiles" / "default"
STEPS = ["genome", "windows", "extract", "train", "predict", "baseline", "evaluate", "browser"]
GPU_STEPS = {"train", "predict"}


def run(cmd: list[str], env: dict, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def dry_run_jobs(text: str) -> dict[str, dict]:
    """rule -> {"threads": int, "resources": {name: value}} from a dry run's job listing."""
    jobs: dict[str, dict] = {}
    for block in re.split(r"\n(?=rule \w+:\n)", text):
        head = re.match(r"rule (\w+):\n", block)
        if not head:
            continue
        body = block.split("\n\n", 1)[0]
        threads = re.search(r"^    threads: (\d+)$", body, re.M)
        res = re.search(r"^    resources: (.*)$", body, re.M)
        resources = {}
        for item in res.group(1).split(", ") if res else []:
            key, _, value = item.partition("=")
            resources[key] = int(value) if value.isdigit() else value
        jobs[head.group(1)] = {"threads": int(threads.group(1)) if threads else 1, "resources": resources}
    return jobs


def profile_values(profile: Path, step: str, attempt: int = 1) -> dict:
    """threads, mem_mb, runtime and gpu a profile gives a step on a given try. Memory and wall
    time are Python expressions of `attempt`, which Snakemake evaluates the same way."""
    conf = yaml.safe_load((profile / "config.yaml").read_text())
    values = {"threads": conf["set-threads"][step]}
    for key, value in conf["set-resources"][step].items():
        values[key] = value if isinstance(value, int) else eval(value, {"attempt": attempt})  # noqa: S307
    return values


@pytest.fixture
def tiny(tiny_genome, tmp_path):
    conf = write_tiny_config(tmp_path, tiny_genome)
    work = tmp_path / "work"
    work.mkdir()
    return work, conf


def test_lint_is_clean(tiny):
    work, conf = tiny
    cmd, env = snakemake_cmd(work, conf, "--lint")
    out = run(cmd, env)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "Lints for" not in text, text[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in text, text[-3000:]
    # the config schema uses the JSON Schema draft Snakemake validates with
    assert "No validator found" not in text, text[-3000:]


def test_every_step_takes_threads_memory_runtime_and_gpus_from_the_workflow_profile(tiny, tmp_path):
    """Distinct values per step in a workflow profile show up in each job of a dry run."""
    work, conf = tiny
    want = {
        step: {"threads": 3 + i, "mem_mb": 1000 + 7 * i, "runtime": 11 + i, **({"gpu": 2} if step in GPU_STEPS else {})}
        for i, step in enumerate(STEPS)
    }
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(yaml.safe_dump({
        "set-threads": {step: v["threads"] for step, v in want.items()},
        "set-resources": {step: {k: x for k, x in v.items() if k != "threads"} for step, v in want.items()},
    }))
    # a dry run caps threads at --cores (1 when not given)
    cmd, env = snakemake_cmd(work, conf, "--dry-run", "--printshellcmds", "--workflow-profile", str(profile))
    cmd[cmd.index("--cores") + 1] = "64"
    out = run(cmd, env)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert f"workflow specific profile {profile}" in out.stderr
    jobs = dry_run_jobs(out.stdout)
    for step, values in want.items():
        got = jobs[step]
        assert got["threads"] == values["threads"], (step, got)
        assert got["resources"]["mem_mb"] == values["mem_mb"], (step, got)
        assert got["resources"]["runtime"] == values["runtime"], (step, got)
        assert got["resources"].get("gpu") == values.get("gpu"), (step, got)
    # train hands its threads to the DataLoader
    assert "train.num_workers=6" in out.stdout


def test_the_default_profile_is_found_and_sizes_every_rule(tiny):
    """A plain run (no profile named) uses workflows/profiles/default through the profiles/ link,
    and both the local and the SLURM profile size every rule of the workflow."""
    work, conf = tiny
    cmd, env = snakemake_cmd(work, conf, "--dry-run")
    cmd[cmd.index("--cores") + 1] = "64"
    out = run(cmd, env)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "workflow specific profile" in out.stderr and "profiles/default" in out.stderr, out.stderr[-2000:]
    assert (REPO / "profiles" / "default").resolve() == DEFAULT_PROFILE.resolve()
    jobs = dry_run_jobs(out.stdout)
    for step in STEPS:
        assert jobs[step]["threads"] == profile_values(DEFAULT_PROFILE, step)["threads"], (step, jobs[step])
        assert jobs[step]["resources"].get("gpu") == profile_values(DEFAULT_PROFILE, step).get("gpu"), step

    listed = run([cmd[0], "-s", str(REPO / "Snakefile"), "-d", str(work), "--list-rules",
                  "--config", "data=tiny", f"conf_dir={conf}"], env)
    assert listed.returncode == 0, listed.stderr[-3000:]
    rules = set(listed.stdout.split()) - {"all"}
    # train_member: a member of a seed ensemble, the train step with another seed (not run with ensemble: 1)
    assert rules - {"train_member"} == set(STEPS) == set(jobs) - {"all"}, (rules, set(jobs))
    for profile in (DEFAULT_PROFILE, PROFILE):
        conf_yaml = yaml.safe_load((profile / "config.yaml").read_text())
        assert set(conf_yaml["set-threads"]) == rules == set(conf_yaml["set-resources"]), profile
        for step in rules:
            values = profile_values(profile, step)
            assert {"threads", "mem_mb", "runtime"} <= set(values), (profile, step, values)
            assert ("gpu" in values) == (step in GPU_STEPS | {"train_member"}), (profile, step, values)
        assert profile_values(profile, "train_member") == profile_values(profile, "train"), profile


@pytest.mark.parametrize("profile", [DEFAULT_PROFILE, PROFILE], ids=["default", "slurm"])
def test_memory_and_runtime_double_on_a_retry(profile):
    """--retries: Snakemake evaluates each resource with the job's attempt number (1, 2, ...)."""
    for step in STEPS:
        first, second = profile_values(profile, step, 1), profile_values(profile, step, 2)
        assert second["mem_mb"] == 2 * first["mem_mb"] > 0, (profile, step)
        assert second["runtime"] == 2 * first["runtime"] > 0, (profile, step)
        assert second["threads"] == first["threads"] >= 1, (profile, step)


def test_resources_in_the_workflow_config_are_refused(tiny, tmp_path):
    """Sizes live in the profile: a config file that still sets them is an error naming the key."""
    work, conf = tiny
    configfile = tmp_path / "resources.yaml"
    configfile.write_text("resources:\n  train:\n    mem_mb: 1000\n")
    cmd, env = snakemake_cmd(work, conf, "--dry-run", "--configfile", str(configfile))
    out = run(cmd, env)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "'resources' was unexpected" in text, text[-3000:]


def test_slurm_profile_dry_run(tiny):
    """The SLURM profile parses and plans every step; the plugin turns each job's resources into sbatch options."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason='needs pip install -e ".[cluster]"')
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    work, conf = tiny
    # a dry run caps threads at --cores (1 when not given); a SLURM run does not
    cmd, env = snakemake_cmd(work, conf, "--workflow-profile", str(PROFILE), "--dry-run")
    cmd[cmd.index("--cores") + 1] = "64"
    out = run(cmd, env, cwd=work)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert f"workflow specific profile {PROFILE}" in text
    jobs = dry_run_jobs(out.stdout)
    assert set(jobs) == set(STEPS) | {"all"}, set(jobs)

    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["rerun-incomplete"] is True
    # memory and wall time are expressions of the attempt, evaluated when a job starts (<TBD> in a dry run)
    values = {step: profile_values(PROFILE, step) for step in STEPS}
    for step in STEPS:
        got = jobs[step]
        assert got["threads"] == values[step]["threads"], (step, got)
        assert got["resources"].get("gpu") == values[step].get("gpu"), (step, got)
    assert jobs["train"]["resources"]["gpu"] >= 1 and jobs["predict"]["resources"]["gpu"] >= 1
    assert values["train"]["threads"] > profile_values(DEFAULT_PROFILE, "train")["threads"]

    # what sbatch would be asked for: the plugin's own translation of each job's resources
    class Res(dict):
        __getattr__ = dict.get

    class Job:
        def __init__(self, name, threads, resources):
            self.name, self.threads, self.resources = name, threads, Res(resources)

    params = {"run_uuid": "x", "slurm_logfile": "x.log", "comment_str": "x", "account": "", "partition": "",
              "workdir": str(work)}
    sbatch = {}
    for step in STEPS:
        job = Job(step, jobs[step]["threads"], {k: v for k, v in values[step].items() if k != "threads"})
        sbatch[step] = get_submit_command(job, params) + set_gres_string(job)
    train = sbatch["train"]
    assert f"--mem {values['train']['mem_mb']}" in train
    assert f"-t {values['train']['runtime']}" in train
    assert f"--gpus={jobs['train']['resources']['gpu']}" in train
    assert f"--cpus-per-task={jobs['train']['threads']}" in train
    assert "--gpus" not in sbatch["extract"] and f"--mem {values['extract']['mem_mb']}" in sbatch["extract"]


# Stand-ins for the SLURM commands the executor plugin calls. sbatch records its arguments
# and runs the --wrap command before it returns (so the plugin's first status check finds
# the job done); sacct/squeue report the job's end state; srun drops its options and runs
# the command. FAKE_SLURM_FAIL_ONCE=<rule>: that rule's first job ends OUT_OF_MEMORY
# without running.
FAKE_SLURM = r'''#!{python}
import json, os, shlex, subprocess, sys
from pathlib import Path

state = Path(os.environ["FAKE_SLURM_STATE"])
tool, args = Path(sys.argv[0]).name, sys.argv[1:]


def opt(name):
    for i, a in enumerate(args):
        if a == name:
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]


def save(path, rec):  # readers (sacct) never see a half-written record
    tmp = path.with_suffix(f".{{os.getpid()}}.tmp")
    tmp.write_text(json.dumps(rec))
    os.replace(tmp, path)


if tool == "sbatch":
    # two jobs can be submitted at once: claim the id by creating its file exclusively
    n = 1000 + len(list(state.glob("*.json")))
    while True:
        job = state / f"{{n}}.json"
        try:
            os.close(os.open(job, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            break
        except FileExistsError:
            n += 1
    rec = {{"id": n, "name": opt("--job-name"), "rule": opt("--comment"), "argv": args, "state": "RUNNING"}}
    if opt("--comment") == "rule_" + os.environ.get("FAKE_SLURM_FAIL_ONCE", "") and not (state / "failed").exists():
        (state / "failed").touch()
        rec["state"] = "OUT_OF_MEMORY"
        save(job, rec)
        print(n)
        sys.exit(0)
    save(job, rec)
    out = opt("--output").replace("%j", str(n))
    done = (f"import json, os, sys; r = json.load(open(sys.argv[1])); "
            f"r['state'] = 'COMPLETED' if sys.argv[2] == '0' else 'FAILED'; "
            f"open(sys.argv[1] + '.tmp', 'w').write(json.dumps(r)); os.replace(sys.argv[1] + '.tmp', sys.argv[1])")
    script = (f"cd {{shlex.quote(opt('-D'))}} && ( {{opt('--wrap')}} ) > {{shlex.quote(out)}} 2>&1; "
              f"{{shlex.quote(sys.executable)}} -c {{shlex.quote(done)}} {{job}} $?")
    env = dict(os.environ, SLURM_JOB_ID=str(n), SLURM_JOB_NAME=opt("--job-name"), SLURM_NTASKS="1")
    subprocess.run(["bash", "-c", script], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    print(n)
elif tool in ("sacct", "squeue"):
    for f in state.glob("*.json"):
        text = f.read_text()
        if not text:  # id claimed, record not yet saved
            continue
        rec = json.loads(text)
        if rec["name"] == opt("--name"):
            print(f"{{rec['id']}}|{{rec['state']}}")
elif tool == "sinfo":
    print("PARTITION\nmain*")
elif tool == "scontrol":
    print("MinJobAge = 300 sec\nMaxArraySize = 1001")
elif tool == "srun":
    while args[0].startswith("-"):
        args.pop(0)
    os.execvpe(args[0], args, dict(os.environ, SLURM_NTASKS="1", SLURM_PROCID="0", SLURM_LOCALID="0",
                                   SLURM_NODEID="0", SLURM_JOB_NAME="job"))
'''


@pytest.mark.slow
def test_slurm_profile_runs_the_workflow_through_the_executor_plugin(tiny, tmp_path):
    """Every step goes through sbatch with its resources; a job killed for memory is retried with twice as much."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason='needs pip install -e ".[cluster]"')
    work, conf = tiny
    bin_dir, state = tmp_path / "bin", tmp_path / "slurm"
    bin_dir.mkdir()
    state.mkdir()
    fake = bin_dir / "fake_slurm.py"
    fake.write_text(FAKE_SLURM.format(python=sys.executable))
    fake.chmod(0o755)
    for tool in ("sbatch", "sacct", "squeue", "sinfo", "scontrol", "srun", "scancel", "sacctmgr", "sshare"):
        (bin_dir / tool).symlink_to(fake)
    cmd, env = snakemake_cmd(work, conf, "--workflow-profile", str(PROFILE),
                             "--slurm-init-seconds-before-status-checks", "2", mc_samples=0)
    del cmd[cmd.index("--cores"):cmd.index("--cores") + 2]
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", FAKE_SLURM_STATE=str(state), FAKE_SLURM_FAIL_ONCE="train")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work, timeout=900)
    if out.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-2000:]}" for p in work.rglob("*.log"))
        pytest.fail(f"{out.stderr[-4000:]}\n{logs[-8000:]}")
    assert (work / "results/tiny/eval/metrics.tsv").exists() and (work / "results/tiny/browser/hub").is_dir()

    jobs = [json.loads(p.read_text()) for p in sorted(state.glob("*.json"))]
    submitted = {}
    for job in jobs:
        step = job["rule"].removeprefix("rule_")
        argv = " ".join(a for a in job["argv"] if not a.startswith("--wrap"))
        attempt = int(re.search(r"--attempt (\d+)", next(a for a in job["argv"] if a.startswith("--wrap"))).group(1))
        submitted.setdefault(step, []).append(attempt)
        values = profile_values(PROFILE, step, attempt)
        assert f"--mem {values['mem_mb']}" in argv, (step, argv)
        assert f"-t {values['runtime']}" in argv, (step, argv)
        assert f"--cpus-per-task={values['threads']}" in argv, (step, argv)
        gpus = values.get("gpu", 0)
        assert (f"--gpus={gpus}" in argv) == bool(gpus) and ("--gpus" in argv) == bool(gpus), (step, argv)
    assert submitted == {**{step: [1] for step in STEPS}, "train": [1, 2]}, submitted


def test_an_ensemble_trains_one_member_per_seed_and_predicts_with_all(tiny):
    """`ensemble: K`: K train jobs (seeds 0..K-1, one folder each, the train step's resources) and one
    prediction averaging them, which writes the uncertainty tracks even without Monte Carlo dropout."""
    work, conf = tiny
    cmd, env = snakemake_cmd(work, conf, "--dry-run", "--printshellcmds", mc_samples=0)
    cmd[cmd.index("--config") + 1 : cmd.index("--config") + 1] = ["ensemble=3"]
    cmd[cmd.index("--cores") + 1] = "64"  # a dry run caps threads at --cores
    out = run(cmd, env)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    members = re.findall(r"seq-unet train .* seed=(\d+) hydra\.run\.dir=(\S+) ", out.stdout)
    assert sorted(members) == [(str(m), f"results/tiny/train/member{m}") for m in range(3)]
    assert "rule train:" not in out.stdout
    jobs = dry_run_jobs(out.stdout)
    assert jobs["train_member"]["threads"] == profile_values(DEFAULT_PROFILE, "train")["threads"]
    assert jobs["train_member"]["resources"]["gpu"] == profile_values(DEFAULT_PROFILE, "train")["gpu"]
    (predict,) = re.findall(r"seq-unet predict .*", out.stdout)
    ckpts = [f"results/tiny/train/member{m}/best.ckpt" for m in range(3)]
    assert f"'predict.ckpt=[{','.join(ckpts)}]'" in predict
    outputs = re.search(r"rule predict:\n(?:.*\n)*?    output: (.*)\n", out.stdout).group(1).split(", ")
    assert {Path(o).name for o in outputs} == {"gc.bw", "noisy.bw", "gc.std.bw", "noisy.std.bw", "gc.initiation.bw",
                                               "noisy.initiation.bw"}  # the default kinetic head
