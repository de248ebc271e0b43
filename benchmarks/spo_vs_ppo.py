"""SPO's claim, measured: with many epochs on one batch, PPO's ratio drifts far past the clip
range while SPO's stays bounded (Xie et al., ICML 2025, arXiv 2401.16025, §4).

Both algorithms train Pendulum-v1 with the registered preset but ``num_epochs`` epochs per batch
(default 20, twice the preset), 4 seeds each, in one script run. Prints, per algorithm, the
ratio deviation mean |r − 1| and the clip fraction (|r − 1| > ε) averaged over every minibatch
step of an update — their mean over all updates and their maximum — and the final returns, and
plots ratio deviation against env steps (``--plot``).

    python benchmarks/spo_vs_ppo.py [--epochs 20] [--seeds 4] [--plot spo_vs_ppo.png]
"""

from __future__ import annotations

import argparse

import pgjax

pgjax.use_host_devices()  # before the first JAX computation: one CPU device per core

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--plot", default=None, help="write the ratio-deviation curves here")
    args = parser.parse_args()
    results = {}
    for algo in ("ppo", "spo"):
        config = pgjax.make_config(algo, args.env, num_epochs=args.epochs)
        results[algo] = pgjax.train(config, seeds=args.seeds, progress=False)
    eps = results["ppo"].config.clip_epsilon
    print(f"{args.env}, {args.epochs} epochs per batch, {args.seeds} seeds, ε = {eps}")
    print(f"{'algo':5} {'mean |r-1|':>10} {'max |r-1|':>10} {'mean clipfrac':>13} "
          f"{'max clipfrac':>12}  final return per seed")
    for algo, result in results.items():
        dev, clip = result.metrics["ratio_deviation"], result.metrics["clipfrac"]
        finals = ", ".join(f"{r:.1f}" for r in result.summary["final_return"])
        print(f"{algo:5} {dev.mean():>10.3f} {dev.max():>10.3f} {clip.mean():>13.3f} "
              f"{clip.max():>12.3f}  {finals}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        for algo, color in (("ppo", "tab:red"), ("spo", "tab:blue")):
            m = results[algo].metrics
            steps = m["env_steps"][0]
            for name, ax in (("ratio_deviation", axes[0]), ("episodic_return", axes[1])):
                for s, curve in enumerate(m[name]):
                    ok = np.isfinite(curve)
                    ax.plot(steps[ok], curve[ok], color=color, lw=0.7, alpha=0.6,
                            label=algo if s == 0 else None)
        axes[0].axhline(eps, color="grey", ls="--", lw=0.8, label="ε")
        axes[0].set(xlabel="env steps", ylabel="mean |r − 1| per update",
                    title=f"{args.epochs} epochs per batch")
        axes[1].set(xlabel="env steps", ylabel="episodic return", title=args.env)
        for ax in axes:
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
