/**
 * The text part of `bort-compress demo`: fill-mask before and after a compression, text in and answers
 * out. No trained model ships with the package, so the demo builds a random-weight masked-LM over a
 * small generated English vocabulary and says plainly that its predictions mean nothing; what it shows
 * is the path (tokens, batches, probabilities) and how often the compressed student agrees with its
 * teacher.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compress } from '../compress.js';
import { BortError } from '../errors.js';
import { synth } from '../synth/bert.js';
import { pipeline } from '../tasks/pipeline.js';
import type { FillMaskResult } from '../tasks/fill-mask.js';

type Out = (line: string) => void;

const WORDS = `the of and to a in is it you that he was for on are with as i his they be at one have this from or had by
not word but what some we can out other were all there when up use your how said an each she which do their time if
will way about many then them write would like so these her long make thing see him two has look more day could go
come did number sound no most people my over know water than call first who may down side been now find any new work
part take get place made live where after back little only round man year came show every good me give our under name
very through just form sentence great think say help low line differ turn cause much mean before move right boy old too
same tell does set three want air well also play small end put home read hand port large spell add even land here must
big high such follow act why ask men change went light kind off need house picture try us again animal point mother
world near build self earth father head stand own page should country found answer school grow study still learn plant
cover food sun four between state keep eye never last let thought city tree cross farm hard start might story saw far
sea draw left late run while press close night real life few north open seem together next white children begin got
walk example ease paper group always music those both mark often letter until mile river car feet care second book
carry took science eat room friend began idea fish mountain stop once base hear horse cut sure watch color face wood
main enough plain girl usual young ready above ever red list though feel talk bird soon body dog family direct pose
leave song measure door product black short numeral class wind question happen complete ship area half rock order fire
south problem piece told knew pass since top whole king space heard best hour better true during hundred five remember
step early hold west ground interest reach fast verb sing listen six table travel less morning ten simple several vowel
toward war lay against pattern slow center love person money serve appear road map rain rule govern pull cold notice
voice unit power town fine certain fly fall lead cry dark machine note wait plan figure star box noun field rest
correct able pound done beauty drive stood contain front teach week final gave green oh quick develop ocean warm free
minute strong special mind behind clear tail produce fact street inch multiply nothing course stay wheel full force
blue object decide surface deep moon island foot system busy test record boat common gold possible plane stead dry
wonder laugh thousand ago ran check game shape equate hot miss brought heat snow tire bring yes distant fill east
paint language among`.split(/\s+/);

const TEXTS = ['the [MASK] is on the table .', 'you will have a [MASK] day .', 'i think , therefore i [MASK] .', 'the capital of the country is a large [MASK] .'];

function top(r: FillMaskResult): string {
  return r.predictions.slice(0, 3).map((p) => `${p.token} ${p.score.toFixed(3)}`).join(', ');
}

export async function textDemo(dir: string, out: Out): Promise<void> {
  const vocabWords = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '.', ',', '?', '!', "'", '-', ...new Set(WORDS)];
  const mdir = path.join(dir, 'text');
  fs.mkdirSync(mdir);
  const teacher = path.join(mdir, 'teacher-mlm.onnx');
  const student = path.join(mdir, 'student-mlm.onnx');
  fs.writeFileSync(path.join(mdir, 'vocab.txt'), vocabWords.join('\n') + '\n');
  out('\nText in, answers out: fill-mask before and after a compression.');
  out('  (No trained model ships with bort-compress: this masked-LM has random weights over a generated');
  out(`  ${vocabWords.length}-word vocabulary, so its predictions are meaningless words. What it shows is text`);
  out('  going in, tokens and probabilities coming out, and how closely the compressed student follows its');
  out('  teacher. Run the same command on your own trained model and its vocab.txt or tokenizer.json.)\n');
  synth({ arch: '4,4,128,512', vocab: vocabWords.length, head: 'mlm', maxPositions: 64, seed: 42, output: teacher });
  await compress(teacher, { arch: '2,4,128,256', output: student });
  out(`$ bort-compress fill-mask ${teacher} ${TEXTS.map((t) => JSON.stringify(t)).join(' ')}`);
  let t: FillMaskResult[], s: FillMaskResult[];
  try {
    const pt = await pipeline('fill-mask', teacher, { batch: 4 });
    const ps = await pipeline('fill-mask', student, { batch: 4 });
    [t, s] = [await pt.run(TEXTS), await ps.run(TEXTS)];
    await pt.close();
    await ps.close();
  } catch (e) {
    if (!(e instanceof BortError)) throw e;
    out(`  skipped: ${e.message}`);
    return;
  }
  let agree = 0;
  for (let i = 0; i < TEXTS.length; i++) {
    if (t[i].predictions[0].id === s[i].predictions[0].id) agree++;
    out(`  ${TEXTS[i]}`);
    out(`    teacher 4,4,128,512  ${top(t[i])}`);
    out(`    student 2,4,128,256  ${top(s[i])}`);
  }
  out(`  top-1 agreement student/teacher: ${agree} of ${TEXTS.length}`);
}
