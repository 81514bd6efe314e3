#!/usr/bin/env bash
# Six masked-LM pretraining runs at once on one GPU (bench/pytorch/pretrain_bert_mlm.py), for
# bench/finetune-spam.ts `--init`: BERT 2x128 and 4x256, each without cross-validation fold 0's emails,
# without fold 2's, and with every train+validation email (for the test split). Data: `.gpu/data` from
#   node --conditions=source --import tsx bench/finetune-spam-pretrain.ts --export .gpu/data --tokenizer T
# Each model comes back as OUT/<name>.tar (config.json + model.safetensors + tokenizer.json); the runs'
# output, line-prefixed, as OUT/log.txt. MINUTES (default 7) is each run's wall-clock budget.
set -u
OUT=${OUT:-/tmp/pretrain-out}
M=${MINUTES:-7}
mkdir -p "$OUT" /tmp/m
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >>"$OUT/log.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" >>"$OUT/log.txt" 2>&1
run() {
  n=$1
  shift
  (
    PYTHONUNBUFFERED=1 python3 bench/pytorch/pretrain_bert_mlm.py --data .gpu/data --out "/tmp/m/$n" --minutes "$M" "$@" 2>&1 |
      sed -u "s/^/[$n] /" >>"$OUT/log.txt"
    [ -d "/tmp/m/$n" ] && tar -C /tmp/m -cf "$OUT/$n.tar" "$n"
  ) &
}
run s0 --exclude-fold 0
run s2 --exclude-fold 2
run sT --exclude-fold none
run m0 --exclude-fold 0 --layers 4 --hidden 256 --lr 7e-4 --f16
run m2 --exclude-fold 2 --layers 4 --hidden 256 --lr 7e-4 --f16
run mT --exclude-fold none --layers 4 --hidden 256 --lr 7e-4 --f16
wait
ls -la "$OUT"
