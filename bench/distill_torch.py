"""PyTorch anchor for bench/distill-vs-pytorch.ts: the same student and teacher (weights read from their
ONNX initializers), the same batches (a JSON file the TS side writes), the same loss and optimizer, timed.

  /usr/bin/python3 bench/distill_torch.py TEACHER.onnx STUDENT.onnx BATCHES.json --threads 2 --lr 5e-4 --steps N

Prints one JSON line: steps/s (after 2 warm-up steps), the first step's loss, peak RSS (KiB)."""
import argparse, json, math, resource, time
import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn.functional as F


def onnx_weights(path):
    """Initializers by name, and each MatMul weight named after the bias its output adds (PyTorch exports
    name MatMul weights onnx::MatMul_N; the Add after it names the bias, e.g. ...attention.self.query.bias)."""
    m = onnx.load(path)
    w = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    consumers = {}
    for n in m.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in m.graph.node:
        if n.op_type == 'MatMul' and n.input[1] in w and w[n.input[1]].dim() == 2:
            for c in consumers.get(n.output[0], []):
                if c.op_type == 'Add':
                    bias = [i for i in c.input if i in w and i.endswith('.bias')]
                    if bias:
                        w[bias[0][:-len('.bias')] + '.weight'] = w[n.input[1]]  # [in, out]
    return w


class Bert(torch.nn.Module):
    """Post-LN BERT with erf GELU and the MLM head tied to the word table (the stock PyTorch export)."""

    def __init__(self, w, heads, trainable):
        super().__init__()
        p = {k.replace('.', '__'): torch.nn.Parameter(v.float().clone(), requires_grad=trainable) for k, v in w.items()
             if k.startswith(('bert.', 'cls.')) and not k.endswith('position_ids')}
        self.p = torch.nn.ParameterDict(p)
        self.heads = heads
        self.layers = sum(1 for k in w if k.endswith('attention.self.query.bias'))

    def g(self, name):
        return self.p[name.replace('.', '__')]

    def lin(self, x, name):
        return x @ self.g(name + '.weight') + self.g(name + '.bias')

    def ln(self, x, name):
        return F.layer_norm(x, (x.shape[-1],), self.g(name + '.weight'), self.g(name + '.bias'), 1e-12)

    def forward(self, ids, types, mask, positions):
        B, S = ids.shape
        e = 'bert.embeddings.'
        x = self.g(e + 'word_embeddings.weight')[ids] + self.g(e + 'position_embeddings.weight')[:S][None] + \
            self.g(e + 'token_type_embeddings.weight')[types]
        x = self.ln(x, e + 'LayerNorm')
        madd = (1.0 - mask[:, None, None, :].float()) * -10000.0
        for l in range(self.layers):
            a = f'bert.encoder.layer.{l}.'
            q, k, v = (self.lin(x, a + 'attention.self.' + n) for n in ('query', 'key', 'value'))
            W = q.shape[-1]
            d = W // self.heads
            sh = lambda t: t.view(B, S, self.heads, d).transpose(1, 2)
            s = sh(q) @ sh(k).transpose(-1, -2) / math.sqrt(d) + madd
            ctx = (s.softmax(-1) @ sh(v)).transpose(1, 2).reshape(B, S, W)
            x = self.ln(x + self.lin(ctx, a + 'attention.output.dense'), a + 'attention.output.LayerNorm')
            u = F.gelu(self.lin(x, a + 'intermediate.dense'))
            x = self.ln(x + self.lin(u, a + 'output.dense'), a + 'output.LayerNorm')
        h = x.reshape(B * S, -1)[positions]
        h = self.ln(F.gelu(self.lin(h, 'cls.transform_dense')), 'cls.transform_ln')
        return h @ self.g('bert.embeddings.word_embeddings.weight').t() + self.g('cls.decoder.bias')


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('teacher'); ap.add_argument('student'); ap.add_argument('batches')
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--lr', type=float, default=5e-4)
    ap.add_argument('--heads', type=int, default=8); ap.add_argument('--steps', type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    assert torch.get_num_threads() == a.threads, torch.get_num_threads()
    spec = json.load(open(a.batches))
    batches = spec['batches']
    steps = a.steps or len(batches)
    teacher = Bert(onnx_weights(a.teacher), a.heads, False).eval()
    student = Bert(onnx_weights(a.student), a.heads, True).train()
    decay = [p for n, p in student.p.items() if p.dim() == 2]
    nodecay = [p for n, p in student.p.items() if p.dim() != 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.01}, {'params': nodecay, 'weight_decay': 0.0}],
                            lr=a.lr, betas=(0.9, 0.999), eps=1e-6)
    warm = round(0.05 * spec['totalSteps'])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: (t + 1) / warm if t + 1 <= warm else
                                              max(0.0, (spec['totalSteps'] - t - 1) / max(1, spec['totalSteps'] - warm)))
    T = 2.0
    times, first = [], None
    # Activation memory kept for the backward: the bytes of every tensor autograd saves during the
    # first step's student forward and loss (each storage counted once; the parameters excluded), the
    # counterpart of the Trainer's "activation bytes" (bench/distill-vs-pytorch.ts prints both).
    param_ptrs = {p.data_ptr() for p in student.p.values()}
    saved = {}

    def pack(t):
        st = t.storage()
        if st.data_ptr() not in param_ptrs:
            saved[st.data_ptr()] = st.nbytes()
        return t

    saved_bytes = None
    for i in range(steps):
        b = batches[i % len(batches)]
        B, S = spec['batch'], spec['seq']
        ids = torch.tensor(b['ids'], dtype=torch.long).view(B, S)
        types = torch.zeros_like(ids)
        mask = torch.tensor(b['mask'], dtype=torch.long).view(B, S)
        pos = torch.tensor(b['positions'], dtype=torch.long)
        labels = torch.tensor(b['labels'], dtype=torch.long)
        t0 = time.perf_counter()
        with torch.no_grad():
            tl = teacher(ids, types, mask, pos)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t) if i == 0 else _nothing():
            sl = student(ids, types, mask, pos)
            mlm = F.cross_entropy(sl, labels)
            kl = F.kl_div(F.log_softmax(sl / T, -1), F.log_softmax(tl / T, -1), log_target=True, reduction='batchmean')
            loss = 0.1 * mlm + 0.9 * T * T * kl
        if i == 0:
            saved_bytes = sum(saved.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        sched.step()
        times.append(time.perf_counter() - t0)
        if first is None:
            first = loss.item()
    timed = times[2:] if len(times) > 2 else times
    print(json.dumps({'stepsPerSecond': len(timed) / sum(timed), 'firstLoss': first, 'lastLoss': loss.item(),
                      'maxRssKiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 'threads': torch.get_num_threads(),
                      'savedBytes': saved_bytes, 'tokens': spec['batch'] * spec['seq'], 'lossPositions': len(batches[0]['labels']),
                      'torch': torch.__version__}))


if __name__ == '__main__':
    main()
