"""PyTorch speed anchor for bench/finetune-topics.ts: fine-tunes the same BERT (weights read from the
ONNX file's initializers with the `onnx` package) as a sequence classifier ([CLS] -> dense -> tanh ->
linear, N(0, 0.02) head) on the same padded batches, AdamW 5e-5 encoder / 1e-3 head, no dropout (the
native engine has none), and prints steps/s as JSON. Run with Debian's /usr/bin/python3 (torch 1.13):

    /usr/bin/python3 bench/finetune_torch.py MODEL.onnx BATCHES.json --threads 2
"""
import argparse
import json
import math
import time

import numpy as np
import onnx
import torch
from onnx import numpy_helper

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("batches")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--warmup", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)

m = onnx.load(a.model)
init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
consumers = {}
for n in m.graph.node:
    for i in n.input:
        consumers.setdefault(i, []).append(n)
# MatMul weights are exported anonymously: name each by the bias initializer its Add reads
weights = {}
for n in m.graph.node:
    if n.op_type == "MatMul" and n.input[1] in init:
        for c in consumers.get(n.output[0], []):
            if c.op_type == "Add":
                bias = next((i for i in c.input if i in init and i.endswith(".bias")), None)
                if bias:
                    weights[bias[: -len(".bias")] + ".weight"] = init[n.input[1]]  # [in, out]
P = lambda k: torch.nn.Parameter(torch.tensor(np.array(init[k] if k in init else weights[k]), dtype=torch.float32))
H = init["bert.embeddings.word_embeddings.weight"].shape[1]
layers = 0
while f"bert.encoder.layer.{layers}.attention.self.query.bias" in init:
    layers += 1
heads = int(json.load(open(a.batches))["heads"])


class Bert(torch.nn.Module):
    def __init__(self, labels):
        super().__init__()
        e = "bert.embeddings."
        self.word, self.pos, self.typ = P(e + "word_embeddings.weight"), P(e + "position_embeddings.weight"), P(e + "token_type_embeddings.weight")
        self.eg, self.eb = P(e + "LayerNorm.weight"), P(e + "LayerNorm.bias")
        self.layers = torch.nn.ModuleList()
        for l in range(layers):
            p = f"bert.encoder.layer.{l}."
            d = torch.nn.ParameterDict()
            for short, name in [("q", "attention.self.query"), ("k", "attention.self.key"), ("v", "attention.self.value"),
                                ("o", "attention.output.dense"), ("i", "intermediate.dense"), ("f", "output.dense")]:
                d[short + "w"], d[short + "b"] = P(p + name + ".weight"), P(p + name + ".bias")
            d["g1"], d["b1"] = P(p + "attention.output.LayerNorm.weight"), P(p + "attention.output.LayerNorm.bias")
            d["g2"], d["b2"] = P(p + "output.LayerNorm.weight"), P(p + "output.LayerNorm.bias")
            self.layers.append(torch.nn.Module())
            self.layers[-1].p = d
        self.pool = torch.nn.Linear(H, H)
        self.cls = torch.nn.Linear(H, labels)
        for lin in (self.pool, self.cls):
            torch.nn.init.normal_(lin.weight, std=0.02)
            torch.nn.init.zeros_(lin.bias)

    def forward(self, ids, types, mask):
        B, S = ids.shape
        x = self.word[ids] + self.pos[:S][None] + self.typ[types]
        x = torch.nn.functional.layer_norm(x, (H,), self.eg, self.eb, 1e-12)
        madd = (1.0 - mask[:, None, None, :].float()) * -10000.0
        dh = H // heads
        for mod in self.layers:
            p = mod.p
            split = lambda t: t.view(B, S, heads, dh).transpose(1, 2)
            q, k, v = split(x @ p["qw"] + p["qb"]), split(x @ p["kw"] + p["kb"]), split(x @ p["vw"] + p["vb"])
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + madd, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(B, S, H)
            x = torch.nn.functional.layer_norm(ctx @ p["ow"] + p["ob"] + x, (H,), p["g1"], p["b1"], 1e-12)
            f = torch.nn.functional.gelu(x @ p["iw"] + p["ib"]) @ p["fw"] + p["fb"]
            x = torch.nn.functional.layer_norm(f + x, (H,), p["g2"], p["b2"], 1e-12)
        return self.cls(torch.tanh(self.pool(x[:, 0])))


data = json.load(open(a.batches))
model = Bert(data["labels"])
head = list(model.pool.parameters()) + list(model.cls.parameters())
enc = [p for n, p in model.named_parameters() if not (n.startswith("pool") or n.startswith("cls"))]
opt = torch.optim.AdamW([{"params": enc, "lr": 5e-5}, {"params": head, "lr": 1e-3}], weight_decay=0.01, eps=1e-6)
batches = [(torch.tensor(b["ids"]).view(b["batch"], b["seq"]), torch.tensor(b["types"]).view(b["batch"], b["seq"]),
            torch.tensor(b["mask"]).view(b["batch"], b["seq"]), torch.tensor(b["classes"])) for b in data["batches"]]
t0, losses = None, []
for i, (ids, types, mask, y) in enumerate(batches):
    if i == a.warmup:
        t0 = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(model(ids, types, mask), y)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    losses.append(loss.item())
steps = len(batches) - a.warmup
secs = time.perf_counter() - t0
print(json.dumps({"engine": "pytorch " + torch.__version__, "threads": a.threads, "steps": steps, "seconds": secs,
                  "stepsPerSecond": steps / secs, "firstLoss": losses[0], "lastLoss": losses[-1]}))
