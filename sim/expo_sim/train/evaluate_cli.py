"""``expo-sim evaluate``: the success rate of a saved policy on the harness's evaluation episodes.

The same episodes (reset seeds ``EVAL_SEED_BASE + i``) and the same deterministic EXPO policy
(editor mean, fixed base noise) as ``expo-train``'s evaluations, so a checkpoint written by the
ROS learner (``<learner dir>/checkpoints/learner_*.safetensors``) and a harness run are measured
alike. ``--base-only`` evaluates the diffusion base alone (the ``bc`` baseline).
``--action-delay-ms D --action-jitter-ms J``: every action takes effect D +- J ms into its period
(:mod:`expo_sim.envs.action_delay`), in lockstep: what latency costs a policy, free of the
machine's load. ``--anchor-deltas``: a late action's pose delta is applied to the pose its
observation reported, as the realtime sim bridge and the Franka adapter do by default
(``realtime_anchor_deltas``, ``executor.anchor_deltas``); without it, to the pose when it lands.
``--execute-steps M`` (a checkpoint whose base predicts action chunks, ``--chunk-len`` >= M):
each decision's action and the next M - 1 actions of its plan are applied before the next
decision (receding horizon; default 1 = decide every step). It composes with the delay.
``--stochastic-edits``: the editor samples its edits as when acting in training (the stochastic
OTF policy) instead of applying its mean edit: what the deterministic evaluation costs or buys.
``--no-edit``: the OTF choice among the N base samples only (the editor off when acting): with
``--base-only``, what the critics' selection and the editor each add to a checkpoint.
``--act-score mean|subset_min``: rank the candidates by this rule when acting (``subset_min`` with
all critics: their min) instead of the checkpoint's ``act_score``.
``--editor-beta B``: the editor's edits bounded by B per action component when acting (its
``u`` in (-1, 1)^d scaled by B instead of the checkpoint's ``editor.beta``): what the edits'
size costs or buys a trained policy, e.g. before training a variant with a smaller bound.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from pathlib import Path


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    from expo_core.tasks import SUPPORTED_TASKS

    p = sub.add_parser(
        "evaluate",
        help="success rate of a checkpoint on the harness's evaluation episodes",
        description=__doc__.split("\n")[0],
    )
    p.add_argument("checkpoint", type=Path, help="expo_core checkpoint (x.safetensors with x.json beside it)")
    p.add_argument("--task", default="lift", choices=SUPPORTED_TASKS, help="task (default lift)")
    p.add_argument("--episodes", type=int, default=30, help="evaluation episodes (default 30)")
    p.add_argument("--horizon", type=int, default=400, help="episode step limit (default 400)")
    p.add_argument("--base-only", action="store_true", help="the diffusion base alone (no editor, no critic)")
    p.add_argument("--out", type=Path, default=None, help="also write the result as JSON here")
    p.add_argument(
        "--action-delay-ms", type=float, default=0.0, help="each action takes effect this late in its period"
    )
    p.add_argument(
        "--action-jitter-ms", type=float, default=0.0, help="uniform +- jitter on the delay, seeded"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the delay jitter (default 0)")
    p.add_argument(
        "--anchor-deltas",
        action="store_true",
        help="with a delay: apply each action's pose delta to the pose its observation reported "
        "(the executors' default), not the pose when it takes effect",
    )
    p.add_argument(
        "--execute-steps",
        type=int,
        default=1,
        help="apply each decision's action and the next N-1 plan actions before deciding again "
        "(needs a base with chunk_len >= N; default 1)",
    )
    p.add_argument(
        "--stochastic-edits",
        action="store_true",
        help="the editor samples its edits as in training (the stochastic OTF policy) instead of "
        "its mean edit",
    )
    p.add_argument(
        "--no-edit",
        action="store_true",
        help="act by the critics' choice among the N base samples only, without the editor's edits",
    )
    p.add_argument(
        "--act-score",
        choices=("mean", "subset_min"),
        default=None,
        help="score the candidates by this rule when acting instead of the checkpoint's "
        "act_score (subset_min with the checkpoint's critic.num_min; the cpu preset's is all "
        "critics, i.e. their min)",
    )
    p.add_argument(
        "--editor-beta",
        type=float,
        default=None,
        help="bound the editor's edits by this much per action component when acting, instead "
        "of the checkpoint's editor.beta (0 < B <= 2)",
    )
    p.set_defaults(func=run_evaluate)


def with_editor_beta(agent, beta: float) -> None:
    """Make ``agent`` act with edits bounded by ``beta`` (the editor's ``u`` scaled by it);
    its config says so. Raises ValueError outside (0, 2], the bound ``EditorConfig`` allows."""
    from dataclasses import replace

    editor = replace(agent.cfg.editor, beta=beta)  # validates
    agent.cfg = agent.cfg.replace(editor=editor)
    agent.policy.cfg = agent.policy.cfg.replace(editor=editor)
    agent.policy.editor.cfg = editor  # the editor's bound is its config's


def _number(x: float) -> float | None:
    """``x``, or None where it is NaN (strict JSON has no NaN)."""
    return None if math.isnan(x) else float(x)


def run_evaluate(args: argparse.Namespace) -> int:
    import torch
    from expo_core.checkpoint import WeightsError, load_checkpoint

    from expo_sim.envs.action_delay import check_delay, with_action_delay
    from expo_sim.envs.robosuite_env import make_env
    from expo_sim.train.evaluation import evaluate
    from expo_sim.train.learners import ExpoLearner

    if args.episodes < 1:
        print("expo-sim evaluate: error: --episodes must be >= 1", file=sys.stderr)
        return 2
    try:
        delay = check_delay(args.action_delay_ms, args.action_jitter_ms)
    except ValueError as e:
        print(f"expo-sim evaluate: error: {e}", file=sys.stderr)
        return 2
    path = args.checkpoint.with_suffix(".safetensors")
    try:
        agent, _ = load_checkpoint(path)
    except (FileNotFoundError, WeightsError, KeyError, ValueError) as e:
        print(f"expo-sim evaluate: error: cannot load {path}: {e}", file=sys.stderr)
        return 2
    k = agent.cfg.diffusion.chunk_len
    if not 1 <= args.execute_steps <= k:
        print(
            f"expo-sim evaluate: error: --execute-steps {args.execute_steps} is invalid for {path.name}: "
            f"allowed 1..{k} (its base's chunk_len)",
            file=sys.stderr,
        )
        return 2
    if args.no_edit and (args.base_only or args.stochastic_edits):
        other = "--base-only" if args.base_only else "--stochastic-edits"
        print(f"expo-sim evaluate: error: --no-edit and {other} exclude each other", file=sys.stderr)
        return 2
    if args.no_edit:
        agent.policy.cfg = agent.policy.cfg.replace(use_editor=False)
    if args.act_score is not None and args.act_score != agent.cfg.act_score:
        c = agent.cfg.critic
        if agent.policy.critic.draws_subset(args.act_score):
            print(
                f"expo-sim evaluate: error: --act-score subset_min needs critic.num_min = num_critics "
                f"(a deterministic min over all critics); {path.name} has {c.num_min} of {c.num_critics}",
                file=sys.stderr,
            )
            return 2
        agent.cfg = agent.cfg.replace(act_score=args.act_score)
        agent.policy.cfg = agent.policy.cfg.replace(act_score=args.act_score)
    if args.editor_beta is not None:
        if args.base_only or args.no_edit:
            other = "--base-only" if args.base_only else "--no-edit"
            print(f"expo-sim evaluate: error: --editor-beta and {other} exclude each other", file=sys.stderr)
            return 2
        if not agent.cfg.use_editor:
            print(
                f"expo-sim evaluate: error: --editor-beta: {path.name} acts without an editor "
                "(use_editor=False)",
                file=sys.stderr,
            )
            return 2
        try:
            with_editor_beta(agent, args.editor_beta)
        except ValueError as e:
            print(f"expo-sim evaluate: error: --editor-beta: {e}", file=sys.stderr)
            return 2
    torch.set_num_threads(1)
    learner = ExpoLearner(agent)  # deterministic decisions with their plans
    if args.base_only:
        act = learner.base_decide
    elif args.stochastic_edits:
        act = functools.partial(learner.decide, deterministic=False)
    else:
        act = learner.decide
    env = with_action_delay(
        make_env(args.task, horizon=args.horizon), *delay, args.seed, anchor=args.anchor_deltas
    )
    t0 = time.perf_counter()
    try:
        res = evaluate(env, act, args.episodes, execute_steps=args.execute_steps)
    finally:
        env.close()
    result = {
        "checkpoint": str(path),
        "task": args.task,
        "policy": "base" if args.base_only else "expo-no-edit" if args.no_edit else "expo",
        "stochastic_edits": bool(args.stochastic_edits and not args.base_only),
        "act_score": agent.cfg.act_score,
        "editor_beta": agent.cfg.editor.beta,
        "episodes": res.episodes,
        "successes": res.successes,
        "success_rate": res.success_rate,
        "ci95": [res.success_ci_low, res.success_ci_high],
        "mean_length": res.mean_length,
        # diagnostics (null for --base-only): the chosen actions' Q, the discounted return that
        # followed them, the share of steps an edited candidate acted
        "eval_q": _number(res.eval_q),
        "eval_mc_return": _number(res.eval_mc_return),
        "eval_edited_fraction": _number(res.eval_edited_fraction),
        "action_delay_ms": delay[0],
        "action_jitter_ms": delay[1],
        "anchor_deltas": bool(args.anchor_deltas),
        "chunk_len": k,
        "execute_steps": args.execute_steps,
        "wall_s": time.perf_counter() - t0,
    }
    print(
        f"{path.name}{f' (actions {delay[0]:g} +- {delay[1]:g} ms late)' if delay[0] else ''}"
        f"{' (anchored deltas)' if delay[0] and args.anchor_deltas else ''}"
        f"{f' ({args.execute_steps} steps per decision)' if args.execute_steps > 1 else ''}"
        f"{' (stochastic edits)' if result['stochastic_edits'] else ''}"
        f"{' (no edits: the base samples only)' if args.no_edit else ''}"
        f"{f' (acting by {args.act_score})' if args.act_score else ''}"
        f"{f' (edits bounded by {args.editor_beta:g})' if args.editor_beta is not None else ''}: "
        f"success {res.successes}/{res.episodes} = {res.success_rate:.2f} "
        f"[{res.success_ci_low:.2f}, {res.success_ci_high:.2f}], mean length {res.mean_length:.0f} steps"
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0
