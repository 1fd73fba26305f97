import { basicTokenize } from '../text/wordpiece.js';
import { Rng } from '../util/random.js';

/**
 * The embedded default for the ERASER benchmark: synthetic movie reviews in the ERASER movies style (one sentence
 * per line, lower-case, PTB-tokenised, e.g. "does n't", "film 's"). Each review is mostly neutral sentences about
 * the plot, the cast and the production, filled from templates and word lists, plus 2–4 sentences that carry the
 * sentiment ("the acting was superb", "a tedious , boring mess"). The tokens of those sentiment phrases are the
 * evidences (the human rationales of ERASER), and all of them have the review's polarity (NEG or POS).
 *
 * The phrases of both polarities share their frames ("the acting was …", "one of the … films of the year",
 * "i … every minute of it"), and the neutral text contains sentiment-looking words in neutral use ("best friend",
 * "the bad guys", "a good deal of"), equally in both classes: a classifier has to find the sentiment phrases and
 * read their key words, so a good explanation of its decision points into the evidences. That is what makes the
 * token-F1 of the ERASER benchmark meaningful on this data.
 *
 * Everything is a pure function of (seed, index). Pure TypeScript, no TF.js.
 */

export type ReviewLabel = 'NEG' | 'POS';

/** One evidence, as in ERASER's jsonl (without the docid): token span end exclusive, sentence span end exclusive. */
export interface SyntheticEvidence {
  start_token: number;
  end_token: number;
  start_sentence: number;
  end_sentence: number;
  text: string;
}

export interface SyntheticReview {
  /** `negR_<index>.txt` or `posR_<index>.txt` (index zero-padded to 3 digits). */
  docid: string;
  /** Sentences joined by '\n', with a final newline. */
  text: string;
  classification: ReviewLabel;
  /** In document order. */
  evidences: SyntheticEvidence[];
}

export interface SyntheticReviewOptions {
  /** Base seed (default 1); review i depends only on (seed, i). */
  seed?: number;
  /** Force the label (default: NEG for even indices, POS for odd ones, so consecutive reviews are balanced). */
  label?: ReviewLabel;
  /** Bounds of the target length in whitespace tokens (defaults 100 and 240). */
  minTokens?: number;
  maxTokens?: number;
  /**
   * Upper bound on BERT basic-tokeniser pieces ("n't" is 3, "'s" 2), so that the whole review fits a 256-wordpiece
   * window with [CLS]/[SEP] and a few '##' splits to spare (default 240).
   */
  maxPieces?: number;
}

/** The ERASER movies query. */
export const REVIEW_QUERY = 'What is the sentiment of this review?';

// ---------------------------------------------------------------------------------------------------------------
// Word lists
// ---------------------------------------------------------------------------------------------------------------

/** A word list written as `a | b c | d`: items separated by '|' or line breaks, trimmed, single inner spaces. */
function list(s: string): readonly string[] {
  return s
    .split(/[|\n]/)
    .map((x) => x.trim().replace(/\s+/g, ' '))
    .filter((x) => x.length > 0);
}

const FIRST_NAMES = list(`
  jack | mary | tom | anna | sam | kate | david | laura | frank | helen | peter | nina | paul | sarah
  victor | julia | eddie | grace | harry | lucy | max | rose | oscar | emma | leo | claire | walter
  diane | ray | alice
`);

const LAST_NAMES = list(`
  carter | miller | hayes | brooks | porter | wells | fisher | mason | reed | grant | hughes | cole
  baxter | quinn | foster | turner | walsh | lambert | doyle | harper | chase | nolan | sutton | barnes
  keller | moreau | tanaka | silva | novak | olsen
`);

const ROLES = list(`
  detective | teacher | soldier | scientist | journalist | lawyer | farmer | thief | nurse | pilot
  priest | boxer | chef | spy | widow | student | sheriff | musician | doctor | banker | painter | sailor
  waitress | professor | mechanic | singer | gambler | reporter | senator | fisherman
`);

const PLACES = list(`
  new york | paris | a small town in ohio | the desert | a space station | london | tokyo
  a remote island | los angeles | an old house | the suburbs | chicago | rome | an oil rig
  a boarding school | a mining town | the mountains | berlin | a fishing village | a hospital
  a small bakery | the city | texas | a prison | a cruise ship | hong kong | the countryside
`);

const TIMES = list(`
  in 1944 | during the cold war | in the near future | in the 1970s | over one summer | in the present day
  during world war ii | on christmas eve | in the 1920s | over a single night | in the late 1950s
  during a long winter | in 1969 | after the war
`);

const GENRES = list(`
  thriller | comedy | drama | romance | western | horror film | science fiction film | musical | war film
  crime story | mystery | animated feature | road movie | family film | action movie | period piece
  sports movie | heist movie | satire | biography
`);

const GOAL_VERBS = list(`
  tries to find | falls in love with | is hunted by | must protect | teams up with | investigates
  escapes from | betrays | searches for | competes against | runs away from | helps | is haunted by
  tries to win back | keeps a secret from | follows | works for | writes letters to
`);

const OBJECTS = list(`
  a missing daughter | a stolen painting | the truth about her past | a mysterious stranger | a secret map
  an old friend | the killer | a lost dog | a fortune in gold | her estranged father | his younger brother
  a rival gang | the local police | a famous singer | a wealthy widow | a group of kids | the bad guys
  a corrupt mayor | a former partner | a lonely neighbor | his best friend | her best friend
  a piece of evidence | a runaway train | an alien signal | the family farm
`);

const RELATIVES = list(`
  brother | sister | father | mother | uncle | wife | husband | son | daughter | cousin
`);

const PRONOUNS = list(`
  he | she
`);

const OPENINGS = list(`
  a long shot of a city at night | a wedding | a funeral | a car chase | a bank robbery | a phone call
  a flashback to 1962 | a storm at sea | a quiet breakfast | a voice over | a train leaving a station
  a job interview | a school play
`);

const ORDINALS = list(`
  first | second | third | fourth | fifth | latest
`);

const RATINGS = list(`
  pg | pg-13 | r
`);

const MINUTES = list(`
  90 | 95 | 100 | 105 | 110 | 120 | 125 | 130 | 140 | two hours
`);

const VENUES = list(`
  a press screening | a film festival | a sneak preview | the local multiplex | a late show | a matinee
`);

const DAYS = list(`
  week | month | friday | sunday | night | spring | fall
`);

const RELEASES = list(`
  this friday | next month | in december | this summer | next week | on christmas day
`);

const SCENES = list(`
  the bank scene | the dinner scene | the final chase | the courtroom scene | the opening sequence
  the scene on the bridge | the dance number | the big fight | the flashback | the last act
`);

// Sentiment vocabulary: the words that decide the class.
const POS_ADJ = list(`
  superb | wonderful | excellent | terrific | brilliant | outstanding | marvelous | remarkable | fantastic
  magnificent | delightful | stunning | flawless | great | charming | gripping
`);

const NEG_ADJ = list(`
  awful | terrible | dreadful | wooden | lifeless | laughable | painful | embarrassing | horrible
  atrocious | dismal | clumsy | lousy | bland | sloppy | tiresome
`);

const POS_ADV = list(`
  thoroughly | wildly | consistently | genuinely | hugely | wonderfully
`);

const NEG_ADV = list(`
  painfully | hopelessly | utterly | incredibly | mind numbingly | deadly
`);

const POS_NOUN = list(`
  triumph | masterpiece | gem | treat | delight | joy
`);

const NEG_NOUN = list(`
  disaster | mess | bore | failure | chore | waste of time
`);

const ASPECTS = list(`
  the acting | the script | the direction | the dialogue | the ending | the cinematography | the music
  the editing | the plot | the cast | the special effects | the pacing
`);

/** Sentiment phrase templates per class; `{…}` slots are filled from the lists above or the review's cast. */
const PHRASES: Record<ReviewLabel, readonly string[]> = {
  POS: [
    '{aspect} was {padj}',
    '{aspect} is {padj}',
    '{actor} gives a {padj} performance',
    'a {padj} , {padj} film',
    'one of the best films of the year',
    'i loved every minute of it',
    'the script is smart and funny',
    'beautifully shot',
    'a genuinely moving story',
    'highly recommended',
    'never boring',
    "i could n't take my eyes off the screen",
    "it 's a joy to watch",
    'the dialogue is sharp and witty',
    '{padv} entertaining',
    'a {pnoun}',
    'an absolute {pnoun}',
    'the performances are {padj} across the board',
    'the best {genre} in years',
    'i would happily see it again',
    '{scene} is {padj}',
    'it works beautifully',
    "do n't miss it",
    '{actor} is {padj} as {hero}',
  ],
  NEG: [
    '{aspect} was {nadj}',
    '{aspect} is {nadj}',
    '{actor} gives a {nadj} performance',
    'a tedious , boring mess',
    'one of the worst films of the year',
    'i hated every minute of it',
    'the script is dumb and predictable',
    'poorly shot',
    'a pointless and dull story',
    'a complete waste of time',
    'never funny',
    "i could n't wait for it to end",
    "it 's a chore to watch",
    'the dialogue is stiff and silly',
    '{nadv} dull',
    'a {nnoun}',
    'an absolute {nnoun}',
    'the performances are {nadj} across the board',
    'the worst {genre} in years',
    'i would never see it again',
    '{scene} is {nadj}',
    "it does n't work at all",
    'skip this one',
    '{actor} is {nadj} as {hero}',
  ],
};

/** Neutral text before a sentiment phrase in its sentence. */
const PHRASE_PREFIXES = [
  '',
  '',
  '',
  'overall , ',
  'frankly , ',
  'in the end , ',
  'to be honest , ',
  'all in all , ',
  'simply put , ',
  'i thought ',
  'as far as i am concerned , ',
  'in my opinion , ',
  'from where i sat , ',
  'for the record , ',
] as const;
/** Neutral text after a sentiment phrase in its sentence. */
const PHRASE_SUFFIXES = [
  '',
  '',
  '',
  '',
  ' , if you ask me',
  ' from start to finish',
  ' , as i said',
  ' , at least for me',
  ' in this version',
  ' , whatever the critics say',
  ' , and {hero} knows it',
  ' once {hero} reaches {place}',
] as const;

/** Neutral sentence templates (about 6–25 tokens each). */
const NEUTRAL: readonly string[] = [
  'the film is a {genre} set in {place} {time} .',
  '{actor} plays {hero} , a {role} who {goal} {object} .',
  'the story follows {hero} , a {role} from {place} .',
  'along the way , {hero} meets a {role} named {other} , played by {actor2} .',
  '{director} directed the film from a script by {writer} .',
  'the movie runs {minutes} minutes and is rated {rating} .',
  'it is based on a novel by {writer} .',
  "{hero} 's {relative} , a {role} , {goal} {object} .",
  "there 's also a subplot involving {other} and {object} .",
  "{actor2} , who was in last year 's {genre} , plays {other} .",
  'the second half of the film takes place in {place} .',
  'the score is by {composer} .',
  'i saw it at {venue} last {day} .',
  'when {hero} discovers {object} , {pron} decides to leave {place} .',
  'most of the story happens {time} .',
  'the film opens with {opening} .',
  "this is {director} 's {ordinal} film .",
  'the cast also includes {actor3} and {actor4} .',
  'we learn early on that {hero} {goal} {object} .',
  "{hero} does n't know that {other} {goal} {object} .",
  'the film was shot in {place} .',
  'it opens {release} .',
  'the producers are {producer} and {producer2} .',
  "{other} is {hero} 's best friend .",
  'the bad guys are led by a {role} named {other} .',
  '{hero} spends a good deal of time in {place} .',
  'in {scene} , {hero} {goal} {object} .',
  'the title refers to {object} .',
  "{pron} is n't the only one who {goal} {object} .",
  'later , {other} {goal} {object} , and {hero} has to choose .',
  'the film is {minutes} minutes long .',
  '{director} also made a {genre} about {object} .',
  'i will not give away the ending .',
  'there are two more characters : a {role} and a {role} .',
  '{actor} and {actor2} worked together before .',
  'the last third moves to {place} .',
  '{hero} used to be a {role} in {place} .',
  'the trailer gives away {scene} .',
  "it 's the kind of {genre} that ends with a wedding .",
  'by the middle of the film , {hero} {goal} {object} .',
];

// ---------------------------------------------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------------------------------------------

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(0, xs.length)]!;
}

function person(rng: Rng): string {
  return `${pick(rng, FIRST_NAMES)} ${pick(rng, LAST_NAMES)}`;
}

/** The review's cast and crew, reused across its sentences. */
interface Cast {
  hero: string;
  other: string;
  pron: string;
  actor: string;
  actor2: string;
  actor3: string;
  actor4: string;
  director: string;
  writer: string;
  composer: string;
  producer: string;
  producer2: string;
  genre: string;
}

function makeCast(rng: Rng): Cast {
  return {
    hero: pick(rng, FIRST_NAMES),
    other: pick(rng, FIRST_NAMES),
    pron: pick(rng, PRONOUNS),
    actor: person(rng),
    actor2: person(rng),
    actor3: person(rng),
    actor4: person(rng),
    director: person(rng),
    writer: person(rng),
    composer: person(rng),
    producer: person(rng),
    producer2: person(rng),
    genre: pick(rng, GENRES),
  };
}

function fill(template: string, rng: Rng, cast: Cast): string {
  return template.replace(/\{(\w+)\}/g, (_, slot: string) => {
    switch (slot) {
      case 'place':
        return pick(rng, PLACES);
      case 'time':
        return pick(rng, TIMES);
      case 'role':
        return pick(rng, ROLES);
      case 'goal':
        return pick(rng, GOAL_VERBS);
      case 'object':
        return pick(rng, OBJECTS);
      case 'relative':
        return pick(rng, RELATIVES);
      case 'opening':
        return pick(rng, OPENINGS);
      case 'ordinal':
        return pick(rng, ORDINALS);
      case 'rating':
        return pick(rng, RATINGS);
      case 'minutes':
        return pick(rng, MINUTES);
      case 'venue':
        return pick(rng, VENUES);
      case 'day':
        return pick(rng, DAYS);
      case 'release':
        return pick(rng, RELEASES);
      case 'scene':
        return pick(rng, SCENES);
      case 'aspect':
        return pick(rng, ASPECTS);
      case 'padj':
        return pick(rng, POS_ADJ);
      case 'nadj':
        return pick(rng, NEG_ADJ);
      case 'padv':
        return pick(rng, POS_ADV);
      case 'nadv':
        return pick(rng, NEG_ADV);
      case 'pnoun':
        return pick(rng, POS_NOUN);
      case 'nnoun':
        return pick(rng, NEG_NOUN);
      default: {
        const v = (cast as unknown as Record<string, string | undefined>)[slot];
        if (v === undefined) throw new Error(`synthetic reviews: unknown template slot {${slot}}`);
        return v;
      }
    }
  });
}

function words(s: string): string[] {
  return s.split(' ').filter((w) => w.length > 0);
}

/** A sentence: its tokens, and the span of its sentiment phrase (token offsets within the sentence). */
interface Sentence {
  tokens: string[];
  phrase?: { start: number; end: number };
}

function sentimentSentence(rng: Rng, cast: Cast, template: string): Sentence {
  const prefix = words(fill(pick(rng, PHRASE_PREFIXES), rng, cast));
  const phrase = words(fill(template, rng, cast));
  const suffix = words(fill(pick(rng, PHRASE_SUFFIXES), rng, cast));
  const end = rng.next() < 0.15 ? '!' : '.';
  return {
    tokens: [...prefix, ...phrase, ...suffix, end],
    phrase: { start: prefix.length, end: prefix.length + phrase.length },
  };
}

/** Seed of review `index` under base seed `seed` (a 32-bit mix, so that neighbouring indices are unrelated). */
function reviewSeed(seed: number, index: number): number {
  let h = Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The ERASER docid of a review: `negR_007.txt`, `posR_123.txt`. */
export function reviewDocid(label: ReviewLabel, index: number): string {
  return `${label === 'NEG' ? 'negR' : 'posR'}_${String(index).padStart(3, '0')}.txt`;
}

/** Review number `index` (a pure function of the options' seed and the index). */
export function generateReview(index: number, opts: SyntheticReviewOptions = {}): SyntheticReview {
  if (!Number.isInteger(index) || index < 0) throw new RangeError(`review index must be an integer ≥ 0, got ${index}`);
  const minTokens = opts.minTokens ?? 100;
  const maxTokens = opts.maxTokens ?? 240;
  const maxPieces = opts.maxPieces ?? 240;
  if (!(minTokens >= 30 && maxTokens >= minTokens + 20 && maxPieces >= maxTokens / 2))
    throw new RangeError(
      `synthetic reviews: need minTokens ≥ 30, maxTokens ≥ minTokens + 20 and a maxPieces to match (got ${minTokens}, ${maxTokens}, ${maxPieces})`,
    );
  const rng = new Rng(reviewSeed(opts.seed ?? 1, index));
  const label: ReviewLabel = opts.label ?? (index % 2 === 0 ? 'NEG' : 'POS');
  const cast = makeCast(rng);

  // 2–4 sentiment sentences from distinct templates.
  const nPhrases = rng.int(2, 5);
  const templates = PHRASES[label].slice();
  const sentiment: Sentence[] = [];
  for (let i = 0; i < nPhrases; i++) {
    const t = templates.splice(rng.int(0, templates.length), 1)[0]!;
    sentiment.push(sentimentSentence(rng, cast, t));
  }

  // Neutral sentences up to the target length, within both bounds.
  const target = rng.int(minTokens, maxTokens + 1);
  const count = (ss: readonly Sentence[]) => ss.reduce((n, s) => n + s.tokens.length, 0);
  const pieces = (ss: readonly Sentence[]) => ss.reduce((n, s) => n + basicTokenize(s.tokens.join(' ')).length, 0);
  let nTok = count(sentiment);
  let nPieces = pieces(sentiment);
  const neutral: Sentence[] = [];
  let pool: string[] = [];
  for (let tries = 0; nTok < target && tries < 200; tries++) {
    // Templates without replacement (a fresh pool when all are used), so a review rarely repeats itself.
    if (pool.length === 0) pool = NEUTRAL.slice();
    const template = pool.splice(rng.int(0, pool.length), 1)[0]!;
    const s: Sentence = { tokens: words(fill(template, rng, cast)) };
    const p = pieces([s]);
    if (nTok + s.tokens.length > maxTokens || nPieces + p > maxPieces) continue;
    neutral.push(s);
    nTok += s.tokens.length;
    nPieces += p;
  }

  // Sentiment sentences at random places among the neutral ones (never first: reviews open with the film).
  const sentences = neutral.slice();
  for (const s of sentiment) sentences.splice(rng.int(1, sentences.length + 1), 0, s);

  const evidences: SyntheticEvidence[] = [];
  let offset = 0;
  sentences.forEach((s, i) => {
    if (s.phrase) {
      evidences.push({
        start_token: offset + s.phrase.start,
        end_token: offset + s.phrase.end,
        start_sentence: i,
        end_sentence: i + 1,
        text: s.tokens.slice(s.phrase.start, s.phrase.end).join(' '),
      });
    }
    offset += s.tokens.length;
  });
  return {
    docid: reviewDocid(label, index),
    text: `${sentences.map((s) => s.tokens.join(' ')).join('\n')}\n`,
    classification: label,
    evidences,
  };
}

/** Reviews `first`, …, `first + count − 1`. */
export function generateReviews(
  count: number,
  opts: SyntheticReviewOptions & { first?: number } = {},
): SyntheticReview[] {
  const first = opts.first ?? 0;
  return Array.from({ length: count }, (_, i) => generateReview(first + i, opts));
}
