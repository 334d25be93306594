/** Help texts. */
import { SYNTH_VARIANT_HELP } from '../synth/cli-flags.js';
export const HELP = `bort-compress — extract a small, fast BERT (Bort-style sub-architecture) from a BERT ONNX model

Usage:
  bort-compress IN.onnx --arch D,A,H,I [-o OUT.onnx] [--strategy importance|first|data [--no-refit]] [--json]
  bort-compress compress IN.onnx --arch D,A,H,I ...   (the same, with the command named)
  bort-compress inspect MODEL.onnx [--json]
  bort-compress synth --arch D,A,H,I [--vocab V] [--head base|mlm|cls|qa|token-cls] -o OUT.onnx
  bort-compress bench MODEL.onnx [--batch B] [--seq S] [--threads T] [--runs N] [--json]
  bort-compress search MODEL.onnx --corpus TEXT --vocab V [--space S] [--steps N] [--shape 1x128] [-o DIR]
  bort-compress demo
  bort-compress quantize MODEL.onnx [-o OUT.onnx] [--per-tensor] [--all] [--calibration TEXT [--vocab V]] [--json]
  bort-compress distill TEACHER.onnx STUDENT.onnx --corpus TEXT --vocab V -o OUT.onnx [--steps N] …
  bort-compress finetune MODEL.onnx --train TRAIN.jsonl --dev DEV.jsonl --task cls [--vocab V] -o OUT.onnx …
  bort-compress --version
  bort-compress fill-mask MODEL.onnx [--vocab V] [--top-k K] ["text with [MASK]" …]
  bort-compress embed MODEL.onnx [--vocab V] [--pooling cls|mean] [--normalize] [-o OUT.npy] [TEXT …]
  bort-compress classify MODEL.onnx [--labels a,b,c] [TEXT …]
  bort-compress answer MODEL.onnx --question Q --context C

An architecture is (D layers, A attention heads, H hidden size, I intermediate size); the head size is H/A.
BERT-large is 24,16,1024,4096; Bort is 4,8,1024,768.

Run 'bort-compress COMMAND --help' (or 'bort-compress help COMMAND') for a command's options.`;

const COMPRESS = `bort-compress IN.onnx --arch D,A,H,I [options]

Extracts the sub-architecture D,A,H,I from IN.onnx and writes a model with the same inputs and outputs.

Options:
  -a, --arch D,A,H,I        target layers, heads, hidden size, intermediate size (H divisible by A)
  -o, --output OUT.onnx     output path (default: IN.bort-D-A-H-I.onnx)
  -s, --strategy S          importance (default): keep the parts that matter most by weight importance;
                            first: keep the first k of each, a reproducible baseline;
                            data: layers chosen by measured KL on --corpus text, heads and neurons by
                              gradients, then W_O and W_out refitted by least squares on that text
      --corpus TEXT         calibration text for --strategy data, one paragraph a line
      --vocab V             the model's vocab.txt or tokenizer.json, for --strategy data
      --no-refit            --strategy data without the least-squares refit (pure scoring)
      --attention-scale M   score scale when the head size changes, derived from the graph's own scale s:
                            mean (default when heads are merged): s·d/d', a merged head's logits are the
                              mean of its source heads' logits (keeps the teacher's function best)
                            keep (default when heads shrink): s unchanged
                            rescale: 1/sqrt(new head size), the BERT convention
      --rescale-attention   same as --attention-scale rescale
      --external-data       write weights to OUT.onnx.data (automatic above 2 GB)
      --json                print the summary as JSON
  -h, --help                this text`;

const INSPECT = `bort-compress inspect MODEL.onnx [--json]

Recognises the BERT structure of MODEL.onnx and prints its architecture, vocabulary, parameters, heads,
inputs and outputs.

Options:
      --json      print one object: {"arch": {"layers", "heads", "hidden", "intermediate"}, "vocab", "params", ...}
  -h, --help      this text`;

const SYNTH = `bort-compress synth --arch D,A,H,I [--vocab V] [--head base|mlm|cls|qa|token-cls] -o OUT.onnx

Writes a randomly initialised BERT in the node pattern of a stock PyTorch export, at any size.

Options:
  -a, --arch D,A,H,I     layers, heads, hidden size, intermediate size (H divisible by A)
  -o, --output OUT.onnx  output path
      --vocab V          vocabulary size (default 30522; 1 to 1,000,000)
      --head H           base (hidden states + pooler, default), mlm (masked-LM logits), cls (classifier),
                         qa (start_logits, end_logits) or token-cls (per-token logits)
      --opset N          11–17 (default 14; 17 uses LayerNormalization)
      --positions P      position table size (default 512; 1 to 65,536)
      --type-vocab T     token types (default 2, RoBERTa 1; 0 for no token-type table; at most 1,024)
      --labels L         classifier labels (default 2; 1 to 100,000)
      --seed S           random seed (default 1234; 0 to 4,294,967,295)
      --external-data    write weights to OUT.onnx.data
      --json             print the summary as JSON
  -h, --help             this text

Every weight may hold at most 2^28 values and the model 2^30 parameters.

${SYNTH_VARIANT_HELP}`;

const BENCH = `bort-compress bench MODEL.onnx [--batch B] [--seq S] [--threads T] [--runs N] [--json]

Times the native engine on MODEL.onnx and, when onnxruntime-node is installed, onnxruntime on the same
inputs with the same thread count (graphOptimizationLevel 'all'), alternating runs in one process after
warm-up. Prints medians of N runs (default 10), GFLOP/s and the ratio ort/ours.

Options:
      --batch B     batch size (default 1; 1 to 1,024, and batch × seq at most 65,536)
      --seq S       sequence length (default 128; at most the model's positions)
      --threads T   threads for both engines (default: all cores; 1 to 256)
      --runs N      timed runs of each engine (default 10; 10 to 10,000)
      --json        print the result as JSON
  -h, --help        this text`;

const DEMO = `bort-compress demo

Synthesises a 6-layer BERT in a temporary folder, inspects it, extracts a 3,8,512,768 student, inspects
that, and times both on the native engine; then runs fill-mask (text in, tokens and probabilities out)
on a random-weight masked-LM before and after a compression. Needs nothing but this package.

Options:
  -h, --help    this text`;

const QUANTIZE = `bort-compress quantize MODEL.onnx [-o OUT.onnx] [--per-tensor] [--all] [--calibration TEXT [--vocab V]] [--json]

Writes MODEL.onnx with int8 weights for every attention projection (Q, K, V, O) and feed-forward matrix,
activations quantized at run time: DynamicQuantizeLinear + MatMulInteger, the operators onnxruntime's
dynamic quantization writes, so onnxruntime runs the result. Weights are symmetric (zero point 0).
Embeddings, LayerNorms, softmax and the heads stay float32.

With --calibration TEXT, activations get static scales instead: the float32 model runs on the native
engine over lines of TEXT (one sequence a line, up to 128 tokens), and each linear input's scale is its
max |x| there / 127, written as Clip(±127·scale) + QuantizeLinear to int8 (zero point 0) +
MatMulInteger, which onnxruntime and the native engine both run. Measured on a trained teacher, dynamic
keeps it better (KL to float32 4x lower; BENCHMARKS.md, int8): use static where a runtime needs constant
scales. Calibrate on training text, never on evaluation text.

Options:
  -o, --output OUT.onnx            output path (default: MODEL.int8.onnx)
      --per-tensor                 one scale per weight matrix (default: one per output column)
      --all                        also quantize the linear heads (pooler, masked-LM transform and decoder, classifiers)
      --calibration TEXT           static activation scales from this text (one paragraph a line)
      --vocab V                    the model's vocab.txt or tokenizer.json (default: the one beside MODEL)
      --calibration-samples N      lines of TEXT to run, spread over the file (default 256)
      --calibration-percentile P   scale from the P-th percentile of the token rows' max |x| (default 100: the max)
      --json                       print the summary as JSON
  -h, --help                       this text`;

const DISTILL = `bort-compress distill TEACHER.onnx STUDENT.onnx --corpus TEXT --vocab V -o OUT.onnx [options]

Trains STUDENT (a masked-LM, e.g. extracted from TEACHER) by knowledge distillation on the native engine:
masked-LM batches from TEXT (one paragraph a line, 15% of the tokens masked), teacher logits computed on
the fly, loss T² · KL(teacher ‖ student) at T = 2 on the masked positions (pure distillation: measured to
keep the teacher far better than the Bort recipe's 0.1 · cross-entropy + 0.9 · T² · KL, which the
options below give), AdamW with 5% warm-up and linear decay. Writes OUT.onnx (the student's graph,
trained weights) at the end.
Ctrl-C (or SIGTERM) stops after the current step and writes a checkpoint OUT.onnx.ckpt, and no model;
--resume continues from it.

Options:
  -o, --output OUT.onnx        the trained student
      --corpus TEXT            training text, one paragraph a line
      --vocab V                the teacher's vocab.txt or tokenizer.json
      --steps N                optimizer steps (default 1,000)
      --batch B                sequences per step (default 32; 1 to 1,024)
      --seq S                  tokens per sequence (default 64; at most the student's positions)
      --lr X                   peak learning rate (default 5e-4; above 0, at most 1)
      --threads T              threads (default: all cores; 1 to 256)
      --seed N                 seed of the masking and data order (default 1)
      --checkpoint-every K     also write the checkpoint every K steps
      --resume                 continue from OUT.onnx.ckpt (same models, corpus and options)
      --eval CASES             held-out cases (an mlm-eval.json): print the student's top-1 agreement
                               with the teacher and its accuracy at the start and every K steps
      --eval-every K           steps between evaluations (default: a tenth of the steps)
      --mlm-weight A           weight of the masked-LM cross-entropy against the true words (default 0)
      --kl-weight B            weight of T² · KL(teacher ‖ student) at temperature T (default 1); a KL
                               weight of 0 is plain masked-LM training
      --temperature T          softmax temperature of the distillation term (default 2)
      --hidden-weight W        add W · MSE between each student layer's output and its teacher layer's
                               (student layer i of S learns from teacher layer round((i+1)·T/S); a learned
                               projection when the hidden sizes differ); default 0 (off)
      --attention-weight W     add W · KL(teacher ‖ student) of the paired layers' attention rows, each
                               averaged over its heads (head counts may differ); default 0 (off)
      --method M               kd (default): the student alone throughout;
                               theseus: BERT-of-Theseus module replacing: the teacher's layers are cut into
                               one group of consecutive layers per student layer, and each update runs each
                               group as its student layer with probability p (the rest as the frozen
                               teacher layers; same hidden size needed), p rising to 1; then the student
                               alone for the last --student-only-steps steps
      --replace-rate p         theseus: p of the constant schedule, starting p of the others (default 0.5)
      --schedule S             theseus: constant (p throughout), linear (p + k·t, reaching 1 at the end of
                               the replacing phase), curriculum (default: p for the first half of the phase,
                               then linear to 1)
      --student-only-steps N   theseus: steps with the student alone at the end (default: a quarter)
      --from-scratch           theseus: re-initialise the student's layers N(0, 0.02) instead of keeping them
      --shared frozen|trained  theseus: embeddings and MLM head during the replacing phase (default frozen)
      --json                   print the summary as JSON
  -h, --help                   this text`;

const FINETUNE = `bort-compress finetune MODEL.onnx --train TRAIN.jsonl --dev DEV.jsonl --task cls -o OUT.onnx [options]

Fine-tunes MODEL as a sequence classifier on the native engine. TRAIN and DEV hold one JSON object a line:
{"text": "...", "label": "..."}, or {"text": "...", "text_pair": "...", "label": "..."} for text pairs. The
labels are those of TRAIN, sorted by name. MODEL's own pooler + classifier is trained when it has one with
as many labels; otherwise (e.g. a masked-LM model) a new head is written: [CLS] → dense → tanh → linear
(N(0, 0.02) weights), the other heads dropped. AdamW (warm-up 10%, then linear decay), dev accuracy after
every epoch, the weights of the best epoch kept. OUT.onnx outputs logits [batch, labels] with id2label in
its metadata (for bort-compress classify). Ctrl-C (or SIGTERM) stops after the current step and writes a
checkpoint OUT.onnx.ckpt, and no model; --resume continues from it.

Options:
  -o, --output OUT.onnx   the fine-tuned classifier
      --train FILE        training examples (JSON lines)
      --dev FILE          dev examples (JSON lines; labels must occur in TRAIN)
      --task cls          sequence classification (the only task so far)
      --vocab V           vocab.txt or tokenizer.json (default: the one beside MODEL)
      --teacher T.onnx    a fine-tuned classifier with the same labels: task distillation, loss
                          CE + T² · KL(teacher ‖ student) at T = 2 on its logits
      --epochs N          passes over TRAIN (default 3; 1 to 10,000)
      --batch B           examples per step (default 32; 1 to 1,024), padded to the longest
      --seq S             tokens per example at most, longer ones cut (default 128 or the model's positions)
      --lr X              peak learning rate of the encoder (default 5e-5)
      --head-lr X         peak learning rate of the classification head (default 1e-3)
      --patience N        stop after N epochs without a better dev accuracy (default 0: never)
      --seed N            seed of the data order and the new head (default 1)
      --threads T         threads (default: all cores; 1 to 256)
      --resume            continue from OUT.onnx.ckpt (same model, data and options)
      --json              print the summary as JSON
  -h, --help              this text`;

export function commandHelp(cmd: string): string {
  return ({ compress: COMPRESS, inspect: INSPECT, synth: SYNTH, demo: DEMO, bench: BENCH, quantize: QUANTIZE, distill: DISTILL, finetune: FINETUNE } as Record<string, string>)[cmd] ?? HELP;
}
