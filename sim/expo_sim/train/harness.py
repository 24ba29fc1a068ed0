"""The training harness: offline pretraining, then online learning in a simulated task, one process.

    expo-train --task lift --dataset data/lift_mixed.hdf5 --algo expo --env-steps 20000 \\
        --eval-every 2000 --eval-episodes 20 --seed 0 --out runs/lift_expo_s0 --preset cpu

1. The dataset is loaded with expo_core's reader (the task's observation spec); it is the offline
   half of every minibatch and the source of the observation normalization.
2. ``expo``, its ablations and ``bc`` start from a pretrained diffusion base
   (:func:`expo_sim.train.pretrain.pretrain_base`, cached); ``rlpd`` starts from scratch.
3. Online: ``warmup_steps`` env steps are collected before the first update (policy actions, or
   uniform random ones with ``random_warmup``), then one learner update per env step. Episodes
   end on success (terminated) or at the horizon (truncated); both flags are stored separately.
4. Every ``eval_every`` env steps (and at the end): ``eval_episodes`` episodes of the
   deterministic policy from fixed initial states, a metrics.csv row with the diagnostics of
   issue 14 (the critic's Q of the chosen actions against the Monte-Carlo discounted return of
   the same episodes, alpha, editor entropy, the share of edited candidates chosen when acting
   and in TD targets, the base's imitation loss on recent online data), the learning-curve PNG,
   summary.json and a checkpoint (learner + replay.npz) that ``resume`` continues from.
5. Env step 0 evaluates the starting point: with ``initial_eval="base"`` (default) the
   pretrained base alone (what every algorithm but rlpd starts from; rlpd its initial actor),
   cached next to the pretrained base so every algorithm of one seed reuses one evaluation;
   with ``"policy"`` the algorithm's own policy (for EXPO: OTF with untrained critics).
``bc`` does not learn online: it is evaluated once, at env step 0.

A run directory is written by one process at a time (an exclusive lock on ``out/.lock``).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import math
import os
import platform
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from expo_core.batch import Batch
from expo_core.presets import check_preset, preset_config
from expo_core.replay import MixedSampler, ReplayBuffer
from expo_core.spec import FRANKA_ACTION_SPEC, task_obs_spec
from expo_core.tasks import check_task

from expo_sim.envs.action_delay import check_delay, with_action_delay
from expo_sim.envs.robosuite_env import make_env_from_hdf5
from expo_sim.train.evaluation import EVAL_SEED_BASE, EvalResult, evaluate
from expo_sim.train.learners import load_learner, wrap
from expo_sim.train.presets import algo_config, check_algo, harness_defaults
from expo_sim.train.pretrain import load_dataset, load_pretrained, preset_base
from expo_sim.train.rlpd import RLPDAgent, RLPDConfig
from expo_sim.train.run_log import COLUMNS, MetricsLog, plot_learning_curve, write_json
from expo_sim.train.run_state import Counters, load_run_state, save_run_state

log = logging.getLogger(__name__)

# Settings that must not change when a run is resumed (env_steps and eval_every may).
RESUME_FIXED = (
    "task",
    "dataset",
    "algo",
    "seed",
    "preset",
    "pretrain_steps",
    "warmup_steps",
    "horizon",
    "action_delay_ms",
    "action_jitter_ms",
    "chunk_len",
    "execute_steps",
)
# What a run.json written before a setting existed meant by it.
_RESUME_DEFAULTS: dict[str, Any] = {
    "action_delay_ms": 0.0,
    "action_jitter_ms": 0.0,
    "chunk_len": 1,
    "execute_steps": 1,
}
INITIAL_EVALS: tuple[str, ...] = ("base", "policy")
BC_LOSS_ROWS = 1024  # most recent online transitions the base's imitation loss is measured on


@dataclass(frozen=True)
class TrainConfig:
    """One run. ``pretrain_steps``/``warmup_steps`` None take the preset's defaults;
    ``pretrain_dir`` None caches the pretrained base under ``out/pretrain``."""

    task: str
    dataset: Path
    out: Path
    algo: str = "expo"
    env_steps: int = 20_000
    eval_every: int = 2_000
    eval_episodes: int = 20
    seed: int = 0
    preset: str = "cpu"
    pretrain_steps: int | None = None
    warmup_steps: int | None = None
    random_warmup: bool = False
    horizon: int = 400
    pretrain_dir: Path | None = None
    resume: bool = False
    progress: bool = True
    initial_eval: str = "base"  # INITIAL_EVALS: what env step 0 evaluates (see the module doc)
    # Latency randomization (expo_sim.envs.action_delay): every action, in training and in the
    # evaluations, takes effect this late (+- jitter) in its period.
    action_delay_ms: float = 0.0
    action_jitter_ms: float = 0.0
    # Action chunks (issue 19): the base predicts chunk_len actions per sample (its imitation
    # targets are the demos' next chunk_len actions; 1 = no chunks). The evaluations apply each
    # decision's action and the next execute_steps - 1 actions of its plan before deciding
    # again (1 = decide every step; needs chunk_len >= execute_steps). Online acting decides
    # every step.
    chunk_len: int = 1
    execute_steps: int = 1

    def __post_init__(self) -> None:
        check_task(self.task)
        check_algo(self.algo)
        check_preset(self.preset)
        if self.initial_eval not in INITIAL_EVALS:
            raise ValueError(f"initial_eval={self.initial_eval!r} is invalid; allowed: {list(INITIAL_EVALS)}")
        defaults = harness_defaults(self.preset)
        if self.pretrain_steps is None:
            object.__setattr__(self, "pretrain_steps", defaults.pretrain_steps)
        if self.warmup_steps is None:
            object.__setattr__(self, "warmup_steps", defaults.warmup_steps)
        for name, low in (("env_steps", 0), ("eval_every", 1), ("eval_episodes", 1), ("horizon", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or v < low:
                raise ValueError(f"{name}={v!r} is invalid; allowed: integer >= {low}")
        for name in ("pretrain_steps", "warmup_steps", "seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"{name}={v!r} is invalid; allowed: integer >= 0")
        for name in ("chunk_len", "execute_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 32:
                raise ValueError(f"{name}={v!r} is invalid; allowed: integer in [1, 32]")
        if self.execute_steps > self.chunk_len:
            raise ValueError(
                f"execute_steps={self.execute_steps} is invalid; allowed: <= chunk_len={self.chunk_len} "
                "(the plan holds chunk_len - 1 actions after the decided one)"
            )
        if self.chunk_len > 1 and self.algo == "rlpd":
            raise ValueError(
                f"chunk_len={self.chunk_len} is invalid for algo 'rlpd'; allowed: 1 (no diffusion base)"
            )
        delay, jitter = check_delay(self.action_delay_ms, self.action_jitter_ms)
        object.__setattr__(self, "action_delay_ms", delay)
        object.__setattr__(self, "action_jitter_ms", jitter)
        object.__setattr__(self, "dataset", Path(self.dataset).resolve())
        object.__setattr__(self, "out", Path(self.out))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def train_episode_seed(seed: int, episode: int) -> int:
    """Reset seed of training episode ``episode`` (a function of both, so a resumed run goes on
    with the episodes it would have seen)."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


class Trainer:
    """Builds (or resumes) a run in ``cfg.out``; :meth:`run` trains and returns the summary."""

    def __init__(self, cfg: TrainConfig, command: list[str] | None = None) -> None:
        self.cfg, self.command = cfg, command or []
        self._t0 = time.perf_counter()
        out = cfg.out
        self.ckpt = out / "checkpoint"
        self.replay_path = out / "replay.npz"
        exists = self.ckpt.with_suffix(".json").exists() or (out / "metrics.csv").exists()
        if exists and not cfg.resume:
            raise FileExistsError(
                f"{out} already holds a run; pass --resume to continue it or choose another --out"
            )
        data = load_dataset(cfg.dataset, cfg.task)  # clear errors for a bad dataset before any env work
        delay = (cfg.action_delay_ms, cfg.action_jitter_ms)
        self.env = with_action_delay(make_env_from_hdf5(cfg.dataset, horizon=cfg.horizon), *delay, cfg.seed)
        if self.env.task != cfg.task:
            self.env.close()
            raise ValueError(f"{cfg.dataset} was recorded in task '{self.env.task}', not '{cfg.task}'")
        eval_env = make_env_from_hdf5(cfg.dataset, horizon=cfg.horizon)
        self.eval_env = with_action_delay(eval_env, *delay, cfg.seed + 1)
        out.mkdir(parents=True, exist_ok=True)
        self._lock = _lock_run_dir(out)
        self.metrics = MetricsLog(out / "metrics.csv")
        self.base_path: Path | None = None  # the pretrained base a fresh run started from
        self.offline = ReplayBuffer.from_arrays(data.transitions(cfg.chunk_len))
        self.sampler_gen = torch.Generator().manual_seed(cfg.seed + 7919)
        self.action_rng = np.random.default_rng([cfg.seed, 2])
        self.counters = Counters()
        if cfg.resume and self.ckpt.with_suffix(".json").exists():
            self._resume()
        else:
            (out / "metrics.csv").unlink(missing_ok=True)
            self.learner = self._fresh_learner(data)
            self.online = ReplayBuffer(self.offline.obs_dim, self.offline.act_dim, max(cfg.env_steps, 1))
        write_json(out / "run.json", cfg.to_dict())
        lc = self.learner.agent.cfg
        sampler = MixedSampler(
            self.online, self.offline, lc.offline_fraction, n_step=lc.n_step, gamma=lc.gamma
        )
        self.batches = sampler.batches(lc.batch_size, self.sampler_gen)
        self._session_wall0 = self.counters.wall_time_s

    # --- setup ------------------------------------------------------------------------
    def _fresh_learner(self, data):
        cfg = self.cfg
        spec = task_obs_spec(cfg.task)
        pcfg = preset_config(cfg.preset, spec.dim, FRANKA_ACTION_SPEC.dim)
        pcfg = pcfg.replace(diffusion=dataclasses.replace(pcfg.diffusion, chunk_len=cfg.chunk_len))
        ecfg = algo_config(cfg.algo, pcfg)
        if cfg.algo == "rlpd":
            agent = RLPDAgent(RLPDConfig.from_expo(ecfg), seed=cfg.seed)
            agent.set_obs_normalization(data.obs.mean(0), data.obs.std(0))
            return wrap(cfg.algo, agent)
        pre_dir = cfg.pretrain_dir if cfg.pretrain_dir is not None else cfg.out / "pretrain"
        t = time.perf_counter()
        path = preset_base(  # the preset's base: every variant of one seed shares it
            cfg.dataset, cfg.task, pcfg, cfg.preset, cfg.pretrain_steps, cfg.seed, pre_dir, cfg.progress
        )
        self.counters.pretrain_time_s = time.perf_counter() - t
        self.base_path = path
        return wrap(cfg.algo, load_pretrained(path, ecfg, cfg.seed))

    def _resume(self) -> None:
        cfg = self.cfg
        prev = json.loads((cfg.out / "run.json").read_text())
        now = cfg.to_dict()
        was = {k: prev.get(k, _RESUME_DEFAULTS.get(k)) for k in RESUME_FIXED}
        changed = {k: (was[k], now[k]) for k in RESUME_FIXED if was[k] != now[k]}
        if changed:
            raise ValueError(f"--resume with different settings than the run in {cfg.out}: {changed}")
        self.learner, meta = load_learner(cfg.algo, self.ckpt)
        steps = int(meta["counters"]["env_steps"])
        self.online, self.counters = load_run_state(
            self.replay_path, self.sampler_gen, self.action_rng, steps, max(cfg.env_steps, 1)
        )
        dropped = self.metrics.truncate_after(steps)
        log.info("resuming %s at env step %d (%d later metrics rows dropped)", cfg.out, steps, dropped)

    # --- loop -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        cfg, c = self.cfg, self.counters
        from tqdm import tqdm

        if not self.metrics.rows():
            self._evaluate_and_save({}, 0, 0, 0.0, initial=True)
        if not self.learner.learns:
            log.info("%s does not learn online: evaluated once at env step 0", cfg.algo)
            return self._finish()
        stats: dict[str, list[float]] = defaultdict(list)
        ep_success, ep_total, loop_t, last_success = 0, 0, time.perf_counter(), self.metrics.rows()[-1]
        bar = tqdm(
            total=cfg.env_steps,
            initial=min(c.env_steps, cfg.env_steps),
            unit="step",
            desc=f"{cfg.algo} {cfg.task}",
            disable=not cfg.progress,
            mininterval=1.0,
        )
        bar.set_postfix(success=f"{last_success['success_rate']:.2f}", refresh=False)
        obs, _ = self.env.reset(seed=train_episode_seed(cfg.seed, c.episodes))
        while c.env_steps < cfg.env_steps:
            if c.env_steps < cfg.warmup_steps and cfg.random_warmup:
                action = self.action_rng.uniform(-1.0, 1.0, FRANKA_ACTION_SPEC.dim).astype(np.float32)
            else:
                action = self.learner.act(obs)
            nxt, reward, terminated, truncated, info = self.env.step(action)
            self.online.add(obs, info["action"], reward, nxt, float(terminated), float(truncated))
            c.env_steps += 1
            if c.env_steps > cfg.warmup_steps:
                t = time.perf_counter()
                for k, v in self.learner.update(self.batches).items():
                    stats[k].append(v)
                c.update_time_s += time.perf_counter() - t
                c.updates += 1
            if terminated or truncated:
                c.episodes += 1
                ep_total += 1
                ep_success += int(terminated)
                obs, _ = self.env.reset(seed=train_episode_seed(cfg.seed, c.episodes))
            else:
                obs = nxt
            bar.update(1)
            if c.env_steps % cfg.eval_every == 0 or c.env_steps == cfg.env_steps:
                loop_s = time.perf_counter() - loop_t
                row = self._evaluate_and_save(stats, ep_success, ep_total, loop_s)
                ups = len(next(iter(stats.values()), [])) / loop_s if loop_s > 0 else 0.0
                bar.set_postfix(success=f"{row['success_rate']:.2f}", upd_s=f"{ups:.1f}", refresh=False)
                stats, ep_success, ep_total, loop_t = defaultdict(list), 0, 0, time.perf_counter()
        bar.close()
        return self._finish()

    def _wall(self) -> float:
        return self._session_wall0 + time.perf_counter() - self._t0

    def _evaluate(self, initial: bool) -> EvalResult:
        cfg, gamma, m = self.cfg, self.learner.gamma, self.cfg.execute_steps
        if initial and cfg.initial_eval == "base":
            if self.base_path is None:  # rlpd: no pretrained base, its initial actor
                return evaluate(self.eval_env, self.learner.base_decide, cfg.eval_episodes, gamma=gamma)
            return cached_base_evaluation(
                self.base_path,
                cfg.eval_episodes,
                cfg.horizon,
                gamma,
                lambda: evaluate(
                    self.eval_env, self.learner.base_decide, cfg.eval_episodes, gamma=gamma, execute_steps=m
                ),
                action_delay=(cfg.action_delay_ms, cfg.action_jitter_ms),
                execute_steps=m,
            )
        return evaluate(self.eval_env, self.learner.decide, cfg.eval_episodes, gamma=gamma, execute_steps=m)

    def _online_bc_loss(self) -> float:
        """The online base's imitation loss on the most recent online transitions."""
        n = min(len(self.online), BC_LOSS_ROWS)
        if n == 0:
            return math.nan
        arrays = {k: torch.as_tensor(v[-n:]) for k, v in self.online.arrays().items()}
        return self.learner.bc_loss(Batch(**arrays))

    def _evaluate_and_save(
        self, stats: dict, ep_success: int, ep_total: int, loop_s: float, initial: bool = False
    ) -> dict[str, float]:
        cfg, c = self.cfg, self.counters
        t = time.perf_counter()
        res = self._evaluate(initial)
        eval_s = time.perf_counter() - t
        c.eval_time_s += eval_s
        n_updates = len(next(iter(stats.values()), []))
        steps_in_row = c.env_steps - int(self.metrics.rows()[-1]["env_steps"]) if self.metrics.rows() else 0
        row: dict[str, float] = {k: float(np.mean(v)) for k, v in stats.items() if k in COLUMNS}
        row.update(dataclasses.asdict(res))
        row.pop("successes")
        row["eval_episodes"] = row.pop("episodes")
        row["eval_q_bias"] = res.eval_q_bias
        if not initial:
            row["bc_loss_online"] = self._online_bc_loss()
        row.update(
            env_steps=c.env_steps,
            episodes=c.episodes,
            updates=c.updates,
            train_success_rate=ep_success / ep_total if ep_total else float("nan"),
            updates_per_s=n_updates / loop_s if loop_s > 0 else float("nan"),
            env_steps_per_s=steps_in_row / loop_s if loop_s > 0 else float("nan"),
            eval_time_s=eval_s,
        )
        c.wall_time_s = self._wall()
        row["wall_time_s"] = c.wall_time_s
        self.metrics.append(row)
        save_run_state(self.replay_path, self.online, self.sampler_gen, self.action_rng, c)
        self.learner.save(self.ckpt, {"counters": dataclasses.asdict(c), "train_config": cfg.to_dict()})
        rows = self.metrics.rows()
        plot_learning_curve(
            rows, cfg.out / "learning_curve.png", f"{cfg.algo} on {cfg.task} (seed {cfg.seed})"
        )
        write_json(cfg.out / "summary.json", self._summary(rows, complete=False))
        ci = (res.success_ci_low, res.success_ci_high)
        log.info("env step %d: success %.2f [%.2f, %.2f]", c.env_steps, res.success_rate, *ci)
        return row

    def _finish(self) -> dict[str, Any]:
        self.counters.wall_time_s = self._wall()
        summary = self._summary(self.metrics.rows(), complete=True)
        write_json(self.cfg.out / "summary.json", summary)
        self.env.close()
        self.eval_env.close()
        os.close(self._lock)
        return summary

    def _summary(self, rows: list[dict[str, float]], complete: bool) -> dict[str, Any]:
        cfg, c = self.cfg, self.counters
        best = max(rows, key=lambda r: (r["success_rate"], -r["env_steps"]))
        final = rows[-1]
        online_s = c.wall_time_s - c.pretrain_time_s - c.eval_time_s
        return {
            "status": "complete" if complete else "running",
            **{k: cfg.to_dict()[k] for k in ("task", "algo", "preset", "seed", "dataset", "out")},
            "env_steps": c.env_steps,
            "episodes": c.episodes,
            "updates": c.updates,
            "initial_success": rows[0]["success_rate"],
            "final_success": final["success_rate"],
            "final_ci": [final["success_ci_low"], final["success_ci_high"]],
            "best_success": best["success_rate"],
            "best_env_steps": int(best["env_steps"]),
            "timing": {
                "wall_time_s": c.wall_time_s,
                "pretrain_time_s": c.pretrain_time_s,
                "eval_time_s": c.eval_time_s,
                "update_time_s": c.update_time_s,
                "online_env_steps_per_s": c.env_steps / online_s if c.env_steps and online_s > 0 else None,
            },
            "config": self.learner.config_dict(),
            "train_config": cfg.to_dict(),
            "command": self.command,
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
        }


def _lock_run_dir(out: Path) -> int:
    """An exclusive lock on ``out/.lock`` for this process's lifetime (released on exit, however
    it exits). Raises FileExistsError if another process holds it."""
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise FileExistsError(f"{out} is being written by another process (pid {holder})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def cached_base_evaluation(
    base_path: Path,
    episodes: int,
    horizon: int,
    gamma: float,
    run: Callable[[], EvalResult],
    action_delay: tuple[float, float] = (0.0, 0.0),
    execute_steps: int = 1,
) -> EvalResult:
    """The evaluation of a pretrained base, cached as JSON next to it: the base alone is one
    deterministic policy, so every algorithm and rerun of one seed shares the result. The cache
    holds for the same base file (its mtime), episodes, horizon, gamma and evaluation seeds, and
    the same action delay (ms, jitter ms; a file of its own when not zero) and plan steps
    executed per decision (a file of its own when not 1)."""
    base_path = Path(base_path).with_suffix(".safetensors")
    key = {
        "base": base_path.name,
        "base_mtime_ns": base_path.stat().st_mtime_ns,
        "episodes": episodes,
        "horizon": horizon,
        "gamma": gamma,
        "seed_base": EVAL_SEED_BASE,
    }
    delayed = ""
    if any(action_delay):
        key.update(action_delay_ms=action_delay[0], action_jitter_ms=action_delay[1])
        delayed = f"-d{action_delay[0]:g}j{action_delay[1]:g}"
    if execute_steps != 1:
        key["execute_steps"] = execute_steps
        delayed += f"-x{execute_steps}"
    path = base_path.with_name(f"{base_path.stem}.eval-n{episodes}-h{horizon}{delayed}.json")
    try:
        stored = json.loads(path.read_text())
        if stored["key"] == key:
            log.info("using the cached evaluation of the base %s", path)
            return EvalResult(**{k: math.nan if v is None else v for k, v in stored["result"].items()})
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        pass
    res = run()
    write_json(path, {"key": key, "result": dataclasses.asdict(res)})
    return res


def train(cfg: TrainConfig, command: list[str] | None = None) -> dict[str, Any]:
    """Run (or resume) one training run; returns what summary.json holds."""
    return Trainer(cfg, command).run()
