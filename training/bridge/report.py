"""Plain-text tables of a fit (position selection) and of the baseline comparison, for the command line, the
benchmark and docs/bridge.md (Markdown pipe tables, readable as they are)."""

from __future__ import annotations


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def input_position_table(positions: dict) -> str:
    chosen = positions["input"]["name"]
    rows = [[("* " if c["name"] == chosen else "  ") + c["name"], str(c["dim"]),
             f"{c['probe_macro_f1']:.3f} ± {c.get('probe_macro_f1_fold_std', float('nan')):.3f}"]
            for c in positions["input_candidates"]]
    return _table(["input position (new model)", "dim", "probe macro F1 (± over folds)"], rows)


def entry_point_table(positions: dict) -> str:
    chosen = set(positions["output"]["entry_points"])
    rows = [[("* " if c["name"] in chosen else "  ") + c["name"], f"{c['dim']} x {c['tokens']}", f"{c['cka']:.3f}"]
            for c in positions["entry_point_cka"]]
    return _table(["entry point (old model)", "dim x tokens", "linear CKA"], rows)


def output_position_table(positions: dict) -> str:
    chosen = positions["output"]["name"]
    rows = []
    for c in positions["output_candidates"]:
        note = c.get("skipped", "chosen" if c["name"] == chosen else "")
        rows.append([("* " if c["name"] == chosen else "  ") + c["name"], f"{c['cka']:.3f}",
                     f"{c.get('trainable_parameters', '')}", f"{c.get('fit_seconds_estimate', float('nan')):.1f}",
                     note])
    return _table(["output position", "CKA", "bridge parameters", "est. fit s", "note"], rows)


def baseline_table(rows: list[dict]) -> str:
    def pct(row, key):
        return f"{100 * row[key]:.1f}" if key in row else "-"

    return _table(["method", "accuracy %", "macro F1 %", "agreement with old head %", "trainable parameters"],
                  [[r["method"], pct(r, "accuracy"), pct(r, "macro_f1"), pct(r, "agreement_with_old_head"),
                    f"{r['trainable_parameters']:,}"] for r in rows])
