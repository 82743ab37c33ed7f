"""The workflow on a cluster: lint, per-step resources, and the SLURM profile (a dry run, and a
whole run through the SLURM executor plugin against stand-ins for the SLURM commands)."""

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


def test_every_step_takes_threads_memory_runtime_and_gpus_from_the_config(tiny, tmp_path):
    """Distinct values per step in a config file show up in each job of a dry run."""
    work, conf = tiny
    want = {
        step: {"threads": 3 + i, "mem_mb": 1000 + 7 * i, "runtime": 11 + i, **({"gpu": 2} if step in GPU_STEPS else {})}
        for i, step in enumerate(STEPS)
    }
    configfile = tmp_path / "resources.yaml"
    configfile.write_text(yaml.safe_dump({"resources": want}))
    # a dry run caps threads at --cores (1 when not given)
    cmd, env = snakemake_cmd(work, conf, "--dry-run", "--printshellcmds", "--configfile", str(configfile))
    cmd[cmd.index("--cores") + 1] = "64"
    out = run(cmd, env)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    jobs = dry_run_jobs(out.stdout)

    listed = run([cmd[0], "-s", str(REPO / "Snakefile"), "-d", str(work), "--list-rules",
                  "--config", "data=tiny", f"conf_dir={conf}"], env)
    assert listed.returncode == 0, listed.stderr[-3000:]
    rules = set(listed.stdout.split()) - {"all"}
    # train_member: a member of a seed ensemble, the train step with another seed (not run with ensemble: 1)
    assert rules - {"train_member"} == set(STEPS) == set(jobs) - {"all"}, (rules, set(jobs))

    for step, values in want.items():
        got = jobs[step]
        assert got["threads"] == values["threads"], (step, got)
        assert got["resources"]["mem_mb"] == values["mem_mb"], (step, got)
        assert got["resources"]["runtime"] == values["runtime"], (step, got)
        assert got["resources"].get("gpu") == values.get("gpu"), (step, got)
    # train hands its threads to the DataLoader
    assert "train.num_workers=6" in out.stdout


def test_memory_and_runtime_double_on_a_retry(tiny):
    """--attempt is what Snakemake passes a job on its second try (--retries)."""
    work, conf = tiny
    cmd, env = snakemake_cmd(work, conf, "--dry-run", "--attempt", "2")
    out = run(cmd, env)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    jobs = dry_run_jobs(out.stdout)
    defaults = yaml.safe_load((REPO / "workflows" / "config.yaml").read_text())["resources"]
    for step in STEPS:
        assert jobs[step]["resources"]["mem_mb"] == 2 * defaults[step]["mem_mb"], (step, jobs[step])
        assert jobs[step]["resources"]["runtime"] == 2 * defaults[step]["runtime"], (step, jobs[step])


def test_a_bad_resource_value_is_a_config_error(tiny, tmp_path):
    work, conf = tiny
    configfile = tmp_path / "resources.yaml"
    configfile.write_text("resources:\n  train:\n    mem_mb: lots\n")
    cmd, env = snakemake_cmd(work, conf, "--dry-run", "--configfile", str(configfile))
    out = run(cmd, env)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "'lots' is not of type 'integer'" in text, text[-3000:]


def test_slurm_profile_dry_run(tiny):
    """The SLURM profile parses and plans every step; the plugin turns each job's resources into sbatch options."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason='needs pip install -e ".[cluster]"')
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    work, conf = tiny
    # a dry run caps threads at --cores (1 when not given); a SLURM run does not
    cmd, env = snakemake_cmd(work, conf, "--profile", str(PROFILE), "--dry-run")
    cmd[cmd.index("--cores") + 1] = "64"
    out = run(cmd, env, cwd=work)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert f"Using profile {PROFILE}" in text
    jobs = dry_run_jobs(out.stdout)
    assert set(jobs) == set(STEPS) | {"all"}, set(jobs)

    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    defaults = yaml.safe_load((REPO / "workflows" / "config.yaml").read_text())["resources"]
    assert profile["executor"] == "slurm" and profile["rerun-incomplete"] is True
    for step in STEPS:
        got = jobs[step]
        threads = profile.get("set-threads", {}).get(step, defaults[step]["threads"])
        assert got["threads"] == threads, (step, got)
        assert got["resources"]["mem_mb"] == defaults[step]["mem_mb"], (step, got)
        assert got["resources"]["runtime"] == defaults[step]["runtime"], (step, got)
        gpus = profile.get("set-resources", {}).get(step, {}).get("gpu", defaults[step].get("gpu"))
        assert got["resources"].get("gpu") == gpus, (step, got)
    assert jobs["train"]["resources"]["gpu"] >= 1 and jobs["predict"]["resources"]["gpu"] >= 1

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
        job = Job(step, jobs[step]["threads"], jobs[step]["resources"])
        sbatch[step] = get_submit_command(job, params) + set_gres_string(job)
    train = sbatch["train"]
    assert f"--mem {defaults['train']['mem_mb']}" in train
    assert f"-t {defaults['train']['runtime']}" in train
    assert f"--gpus={jobs['train']['resources']['gpu']}" in train
    assert f"--cpus-per-task={jobs['train']['threads']}" in train
    assert "--gpus" not in sbatch["extract"] and f"--mem {defaults['extract']['mem_mb']}" in sbatch["extract"]


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
    cmd, env = snakemake_cmd(work, conf, "--profile", str(PROFILE), "--slurm-init-seconds-before-status-checks", "2",
                             mc_samples=0)
    del cmd[cmd.index("--cores"):cmd.index("--cores") + 2]
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", FAKE_SLURM_STATE=str(state), FAKE_SLURM_FAIL_ONCE="train")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work, timeout=900)
    if out.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-2000:]}" for p in work.rglob("*.log"))
        pytest.fail(f"{out.stderr[-4000:]}\n{logs[-8000:]}")
    assert (work / "results/tiny/eval/metrics.tsv").exists() and (work / "results/tiny/browser/hub").is_dir()

    jobs = [json.loads(p.read_text()) for p in sorted(state.glob("*.json"))]
    defaults = yaml.safe_load((REPO / "workflows" / "config.yaml").read_text())["resources"]
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    submitted = {}
    for job in jobs:
        step = job["rule"].removeprefix("rule_")
        argv = " ".join(a for a in job["argv"] if not a.startswith("--wrap"))
        attempt = int(re.search(r"--attempt (\d+)", next(a for a in job["argv"] if a.startswith("--wrap"))).group(1))
        submitted.setdefault(step, []).append(attempt)
        assert f"--mem {defaults[step]['mem_mb'] * attempt}" in argv, (step, argv)
        assert f"-t {defaults[step]['runtime'] * attempt}" in argv, (step, argv)
        threads = profile["set-threads"].get(step, defaults[step]["threads"])
        assert f"--cpus-per-task={threads}" in argv, (step, argv)
        gpus = profile["set-resources"].get(step, {}).get("gpu", 0)
        assert (f"--gpus={gpus}" in argv) == bool(gpus) and ("--gpus" in argv) == bool(gpus), (step, argv)
    assert submitted == {**{step: [1] for step in STEPS}, "train": [1, 2]}, submitted


def test_an_ensemble_trains_one_member_per_seed_and_predicts_with_all(tiny):
    """`ensemble: K`: K train jobs (seeds 0..K-1, one folder each, the train step's resources) and one
    prediction averaging them, which writes the uncertainty tracks even without Monte Carlo dropout."""
    work, conf = tiny
    cmd, env = snakemake_cmd(work, conf, "--dry-run", "--printshellcmds", mc_samples=0)
    cmd[cmd.index("--config") + 1 : cmd.index("--config") + 1] = ["ensemble=3"]
    out = run(cmd, env)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    members = re.findall(r"seq-unet train .* seed=(\d+) hydra\.run\.dir=(\S+) ", out.stdout)
    assert sorted(members) == [(str(m), f"results/tiny/train/member{m}") for m in range(3)]
    assert "rule train:" not in out.stdout
    jobs = dry_run_jobs(out.stdout)
    defaults = yaml.safe_load((REPO / "workflows" / "config.yaml").read_text())["resources"]
    assert jobs["train_member"]["resources"]["mem_mb"] == defaults["train"]["mem_mb"]
    (predict,) = re.findall(r"seq-unet predict .*", out.stdout)
    ckpts = [f"results/tiny/train/member{m}/best.ckpt" for m in range(3)]
    assert f"'predict.ckpt=[{','.join(ckpts)}]'" in predict
    outputs = re.search(r"rule predict:\n(?:.*\n)*?    output: (.*)\n", out.stdout).group(1).split(", ")
    assert {Path(o).name for o in outputs} == {"gc.bw", "noisy.bw", "gc.std.bw", "noisy.std.bw"}
