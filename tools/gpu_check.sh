#!/bin/bash
# The GPU check of the parts added by issues 34-35, for a lent CUDA machine (docs/benchmarks.md): trains
# tools/gpu_check.yaml and tools/gpu_check_deeplab.yaml (the second at each DeepLab variant of Yun and Cho 2023
# Tables 2-3) on the device and writes a summary per job into $1. The machine's own python3 and torch run it; the
# packages it lacks travel as wheels in .whl (carry: [.whl]).
set -u
out=${1:?give the output folder}
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export WANDB_MODE=disabled WANDB_SILENT=true
python3 -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, torch.cuda.get_device_name(0))' | tee "$out/device.txt"
run() { python3 -m mtlbench.cli run "$@" --results "$out/results" --wandb disabled --workers 1 >> "$out/run.log" 2>&1; echo "exit $? for $*" | tee -a "$out/exits.txt"; }
run tools/gpu_check.yaml
run tools/gpu_check_deeplab.yaml
for variant in "model.head=shared_aspp model.decoder=v3+_amtl" "model.head=per_task model.decoder=v3+_amtl" \
               "model.backbone=mobilenet_v2 model.head=shared_aspp model.decoder=v3+_amtl" \
               "model.backbone=efficientnet_v2_s model.head=shared_aspp model.decoder=v3+_amtl"; do
  sets=(); for s in $variant; do sets+=(--set "$s"); done
  run tools/gpu_check_deeplab.yaml "${sets[@]}" --set "methods=[supervised, mtpsl]"
done
python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
lines = []
for path in sorted(out.glob("results/*/*/result.json")):
    r = json.loads(path.read_text())
    observed = {o["observer"]: o for o in r.get("observed", [])}
    memory = observed.get("peak_memory", {}).get("peak_bytes", 0) / 2 ** 20
    cosines = observed.get("gradient_cosine", {}).get("cosines", [])
    finite = sum(v is not None for row in cosines for v in row)
    model = r["config"]["model"]
    lines.append(f"{r['suite']:18} {r['method']:14} {model.get('backbone', model['name']):18} {model.get('head', ''):11} "
                 f"{model.get('decoder', ''):9} {r['device']:28} {r['train_seconds']:6.1f} s  peak {memory:7.1f} MiB  "
                 f"cos values {finite:4d}  seg.miou {r['test']['seg']['miou']:.4f}  solver {r.get('solver', {})}")
(out / "summary.txt").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
