"""Fake PleIAs/SYNTH shards in the real schema (see /work/shared/SOURCES.md §1).

The real shards are 450 MB each and not available here, so tests and the demo run on small
deterministic shards that copy the real column layout and its quirks: nine exercise values,
``None`` *and* ``""`` for missing values, ``result:`` constraints whose decorated answers
sometimes disagree, empty reasoning on writing exercises, NULs, literal Harmony markers,
emoji/CJK/right-to-left text and answers far too long for an 8,192-token window.

Quirks come two ways: at realistic random rates in every shard, and *planted* (at least one of
each, on distinct rows) in every shard of at least ``PLANT_MIN_ROWS`` rows, so that tests can
rely on them. The text helpers at the top are shared with the other demo generators.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

# --------------------------------------------------------------------------------------------
# Shared text helpers (also used by opencode.py, nemotron.py, oasst2.py)
# --------------------------------------------------------------------------------------------

#: Literal Harmony control strings that must survive as ordinary text.
HARMONY_MARKERS = ("<|end|>", "<|start|>assistant", "<|channel|>final<|message|>", "<|return|>")

#: Snippets that stress encoders: emoji (incl. ZWJ and flags), CJK, right-to-left scripts.
EMOJI = ("🙂", "🚀", "📚", "✅", "🔥", "👩‍🔬", "🇫🇷", "🤔")
CJK_SNIPPETS = ("中文说明：机器学习的基本概念。", "日本語のテキストも含まれます。", "한국어 문장도 있습니다.")
RTL_SNIPPETS = ("مرحبا بالعالم، هذا نص عربي قصير.", "שלום עולם, זהו טקסט קצר בעברית.")
SYMBOLS = ("→", "∴", "●", "⚠", "✓")

#: Small vocabularies: enough for text that *looks* like the language to a language filter.
VOCAB: dict[str, tuple[str, ...]] = {
    "en": tuple("""the history of river city trade empire early modern science theory network
        ancient treaty people region market language century records evidence remains significant
        development process structure northern southern influence culture system political economic
        writers scholars considered during after before through between within across which their
        these often later small large central local temperature energy light water stone bridge
        harbour council reform archive manuscript was is also according years and with""".split()),
    "de": tuple("""der die das und Geschichte Stadt Handel Reich frühen modernen Wissenschaft Theorie
        Netzwerk alten Vertrag Menschen Region Markt Sprache Jahrhundert Quellen Beweise bedeutend
        Entwicklung Prozess Struktur nördlichen südlichen Einfluss Kultur System politischen
        wirtschaftlichen Schriftsteller Gelehrte während nach vor durch zwischen innerhalb welche ihre
        diese oft später kleine große zentrale Wasser Brücke Hafen Rat Reform Handschrift
        Überlieferung gegründet wurde ist auch""".split()),
    "es": tuple("""el la los las y historia ciudad comercio imperio temprano moderno ciencia teoría red
        antiguo tratado pueblo región mercado lengua siglo registros pruebas importante desarrollo
        proceso estructura norte sur influencia cultura sistema político económico escritores durante
        después antes entre dentro cual sus estos menudo pequeño grande central agua puente puerto
        consejo reforma manuscrito fundó fue es también según años niño""".split()),
    "fr": tuple("""le la les et histoire ville commerce empire début moderne science théorie réseau
        ancien traité peuple région marché langue siècle archives preuves important développement
        processus structure nord sud influence culture système politique économique écrivains savants
        pendant après avant entre dans dont leurs ces souvent petit grand central eau pont port
        conseil réforme manuscrit fondée était est aussi selon années élève où à""".split()),
    "it": tuple("""il la gli le e storia città commercio impero primo moderno scienza teoria rete
        antico trattato popolo regione mercato lingua secolo documenti prove importante sviluppo
        processo struttura nord sud influenza cultura sistema politico economico scrittori studiosi
        durante dopo prima tra dentro quale loro questi spesso piccolo grande centrale acqua ponte
        porto consiglio riforma manoscritto fondata era è anche secondo anni perché""".split()),
    "pl": tuple("""historia miasto handel cesarstwo wczesny nowoczesny nauka teoria sieć starożytny
        traktat ludzie region rynek język wiek źródła dowody ważny rozwój proces struktura północny
        południowy wpływ kultura system polityczny gospodarczy pisarze uczeni podczas po przed przez
        między wewnątrz który ich te często później mały duży centralny woda most port rada reforma
        rękopis założony był jest także według lat się że oraz""".split()),
    "nl": tuple("""de het een en geschiedenis stad handel rijk vroege moderne wetenschap theorie
        netwerk oude verdrag mensen regio markt taal eeuw bronnen bewijs belangrijk ontwikkeling
        proces structuur noordelijke zuidelijke invloed cultuur systeem politieke economische
        schrijvers geleerden tijdens na voor door tussen binnen welke hun deze vaak later kleine grote
        water brug haven raad hervorming handschrift gesticht werd is ook volgens jaren""".split()),
    "la": tuple("""historia urbs mercatura imperium antiquus novus scientia ratio populus regio forum
        lingua saeculum testimonia magnus parvus bellum pax rex senatus consul lex aqua pons portus
        consilium liber scriptor docti per post ante inter intra qui quae quod eorum saepe postea fuit
        est sunt etiam secundum annos terra mare caelum via domus civitas gens tempus opus virtus
        fides""".split()),
    "pt": tuple("""a o os as e história cidade comércio império moderno ciência teoria rede antigo
        tratado povo região mercado língua século registros provas importante desenvolvimento
        processo estrutura norte sul influência cultura sistema político econômico escritores durante
        depois antes entre qual seus estes frequentemente pequeno grande água ponte porto conselho
        reforma manuscrito fundada foi é também segundo anos não ação""".split()),
    "sv": tuple("""historia stad handel rike tidiga moderna vetenskap teori nätverk gamla fördrag
        människor region marknad språk århundrade källor bevis viktig utveckling process struktur
        norra södra inflytande kultur system politiska ekonomiska författare under efter före genom
        mellan inom vilken deras dessa ofta senare liten stor vatten bro hamn råd reform grundades var
        är också enligt år och att på för med""".split()),
    "ru": tuple("""история город торговля империя ранний современный наука теория сеть древний
        договор люди регион рынок язык век источники доказательства важный развитие процесс
        структура северный южный влияние культура система политический экономический писатели
        учёные во время после до через между внутри который их эти часто позже малый большой вода
        мост порт совет реформа рукопись был является также согласно лет и в на""".split()),
    "uk": tuple("""історія місто торгівля імперія ранній сучасний наука теорія мережа давній договір
        люди регіон ринок мова століття джерела докази важливий розвиток процес структура північний
        південний вплив культура система політичний економічний письменники під час після до через
        між який їхні ці часто пізніше малий великий вода міст порт рада реформа рукопис був є також
        згідно років і в на що ґрунт їжа""".split()),
    "ca": tuple("""la el els les i història ciutat comerç imperi modern ciència teoria xarxa antic
        tractat poble regió mercat llengua segle registres proves important desenvolupament procés
        estructura nord sud influència cultura sistema polític econòmic escriptors durant després
        abans entre dins qual seus aquests sovint petit gran aigua pont port consell reforma manuscrit
        fundada va ser és també segons anys""".split()),
    "nb": tuple("""historie by handel rike tidlige moderne vitenskap teori nettverk gamle traktat
        mennesker region marked språk århundre kilder bevis viktig utvikling prosess struktur
        nordlige sørlige innflytelse kultur system politiske økonomiske forfattere under etter før
        gjennom mellom innenfor hvilken deres disse ofte senere liten stor vann bro havn råd reform
        grunnlagt var er også ifølge år og å på for med""".split()),
    "zh": tuple("""历史 城市 贸易 帝国 早期 现代 科学 理论 网络 古代 条约 人民 地区 市场 语言 世纪 记录
        证据 重要 发展 过程 结构 北方 南方 影响 文化 系统 政治 经济 作家 学者 期间 之后 之前 通过 之间
        内部 他们 这些 经常 后来 小 大 中央 水 桥 港口 议会 改革 手稿 建立 是 也 根据 年 的 和 在""".split()),
    "ja": tuple("""歴史 都市 貿易 帝国 初期 現代 科学 理論 ネットワーク 古代 条約 人々 地域 市場 言語 世紀
        記録 証拠 重要 発展 過程 構造 北部 南部 影響 文化 システム 政治 経済 作家 学者 の間 の後 の前
        を通じて の中 彼ら これら よく 後に 小さい 大きい 中央 水 橋 港 評議会 改革 写本 設立 です も
        によると 年 の と で は が""".split()),
}
#: Languages written without spaces between words.
_NO_SPACE = ("zh", "ja")

#: Proper nouns that read the same in every language.
TOPICS = (
    "Ada Lovelace", "Johannes Kepler", "Marie Curie", "Kraków", "Alhambra", "Rosetta", "Hansa",
    "Carthago", "Byzantium", "Gregor Mendel", "Leonhard Euler", "Etna", "Timbuktu", "Copernicus",
    "Hildegard von Bingen", "Gutenberg", "Lisboa", "Wrocław", "Petra", "Angkor", "Sevilla",
    "Ravenna", "Samarkand", "Tycho Brahe",
)


def vocab(lang: str | None) -> tuple[str, ...]:
    """Vocabulary for a language code such as ``de`` or ``pt-BR`` (English when unknown)."""
    if not lang:
        return VOCAB["en"]
    return VOCAB.get(lang, VOCAB.get(lang.split("-")[0].lower(), VOCAB["en"]))


def words(rng: random.Random, lang: str | None, n: int) -> str:
    """``n`` random words of ``lang`` joined the way that language writes them."""
    chosen = rng.choices(vocab(lang), k=max(1, n))
    return ("" if lang in _NO_SPACE else " ").join(chosen)


def sentence(rng: random.Random, lang: str | None, lo: int = 6, hi: int = 16) -> str:
    """One capitalised sentence with a full stop."""
    text = words(rng, lang, rng.randint(lo, hi))
    if lang in _NO_SPACE:
        return text + "。"
    return text[0].upper() + text[1:] + ("." if rng.random() < 0.9 else "!")


def text_of_length(rng: random.Random, lang: str | None, n_chars: int) -> str:
    """Paragraphs of sentences, at least ``n_chars`` characters long."""
    paragraphs: list[str] = []
    total = 0
    while total < n_chars:
        para = " ".join(sentence(rng, lang) for _ in range(rng.randint(3, 6)))
        paragraphs.append(para)
        total += len(para) + 2
    return "\n\n".join(paragraphs)


def long_varied_text(rng: random.Random, n_chars: int = 60_000) -> str:
    """Text far too long for 8,192 tokens that does not compress into few tokens.

    Words of every vocabulary mixed with numbers, so that a tokenizer cannot merge it into a
    handful of repeated tokens (60,000 characters is roughly 15-20k tokens).
    """
    pool = [w for lang in ("en", "de", "fr", "es", "pl", "it") for w in VOCAB[lang]]
    parts: list[str] = []
    total = 0
    while total < n_chars:
        chunk = " ".join(rng.choices(pool, k=12)) + f" {rng.randint(0, 99999)}."
        if rng.random() < 0.1:
            chunk += "\n\n"
        parts.append(chunk)
        total += len(chunk) + 1
    return " ".join(parts)


def insert_at_random(rng: random.Random, text: str, snippet: str) -> str:
    """``text`` with ``snippet`` inserted at a random word boundary (or appended)."""
    spaces = [i for i, ch in enumerate(text[:4000]) if ch == " "]
    if not spaces:
        return text + " " + snippet
    pos = rng.choice(spaces)
    return text[:pos] + " " + snippet + text[pos:]


# --------------------------------------------------------------------------------------------
# SYNTH schema and vocabularies
# --------------------------------------------------------------------------------------------

_STRING_COLUMNS = (
    "synth_id", "language", "exercise", "model", "query", "query_seed_url", "query_seed_text",
    "additional_seed_url", "seed_license", "constraints", "script", "synthetic_reasoning",
    "synthetic_answer",
)
SYNTH_SCHEMA = pa.schema(
    [pa.field(name, pa.string(), nullable=True) for name in _STRING_COLUMNS]
    + [pa.field("words", pa.int64(), nullable=True)]
)
SYNTH_COLUMNS = tuple(SYNTH_SCHEMA.names)

EXERCISES = (
    "memorization", "mcq", "constrained writing", "math exercise", "rag", "math mcq",
    "creative writing", "editing", "cooking",
)
#: memorization ~90%, the other eight 0.75-1.5% each.
_EXERCISE_WEIGHTS = (0.90, 0.015, 0.0125, 0.015, 0.015, 0.0125, 0.0125, 0.01, 0.0075)
_ID_PREFIX = {
    "memorization": "memorization", "mcq": "mcq", "constrained writing": "constrained_writing",
    "math exercise": "synth_math", "rag": "rag", "math mcq": "mcq_math",
    "creative writing": "creative_writing", "editing": "editing", "cooking": "cooking",
}
#: en ~81%, de/es/fr/it/pl ~3% each, nl, la, rare pt/sv, ~0.5% null.
_LANGUAGES = ("en", "de", "es", "fr", "it", "pl", "nl", "la", "pt", "sv", None)
_LANGUAGE_WEIGHTS = (0.81, 0.03, 0.03, 0.03, 0.03, 0.03, 0.015, 0.01, 0.005, 0.005, 0.005)
_LANGUAGE_NAMES = {
    "de": "german", "es": "spanish", "fr": "french", "it": "italian", "pl": "polish",
    "nl": "dutch", "la": "latin", "pt": "portuguese", "sv": "swedish",
}
_MODELS = ("qwen-3-8b", "qwen-3-32b", "mistral-small-3.1", "gemma-3-27b", "deepseek-v3")
_LICENSES = ("CC-BY-SA 4.0", "CC-BY-SA 4.0", "CC-BY-SA 4.0", "CC-BY 4.0", "CC0 1.0")

#: Minimal per-language templates so that non-English rows read as that language.
_T = {
    "en": dict(q=("What is known about {t}?", "How did {t} shape the {w} of its time?",
                  "Why do historians still discuss {t} and its {w}?"),
               write="Write a short text about {t}.", story="Write a short story set in {t}.",
               edit="Improve the style of the following passage:", cook="How do I make {t}?",
               calc="Calculate", which="Which statement about {t} is correct?",
               ans="Answer", steps="Ingredients"),
    "de": dict(q=("Was ist über {t} bekannt?", "Wie hat {t} die {w} seiner Zeit geprägt?"),
               write="Schreibe einen kurzen Text über {t}.",
               story="Schreibe eine kurze Geschichte, die in {t} spielt.",
               edit="Verbessere den Stil des folgenden Abschnitts:", cook="Wie bereite ich {t} zu?",
               calc="Berechne", which="Welche Aussage über {t} ist richtig?",
               ans="Antwort", steps="Zutaten"),
    "es": dict(q=("¿Qué se sabe sobre {t}?", "¿Cómo influyó {t} en la {w} de su época?"),
               write="Escribe un texto breve sobre {t}.",
               story="Escribe un relato breve ambientado en {t}.",
               edit="Mejora el estilo del siguiente pasaje:", cook="¿Cómo preparo {t}?",
               calc="Calcula", which="¿Qué afirmación sobre {t} es correcta?",
               ans="Respuesta", steps="Ingredientes"),
    "fr": dict(q=("Que sait-on de {t} ?", "Comment {t} a-t-il marqué la {w} de son époque ?"),
               write="Écrivez un court texte sur {t}.",
               story="Écrivez une courte histoire qui se déroule à {t}.",
               edit="Améliorez le style du passage suivant :", cook="Comment préparer {t} ?",
               calc="Calculez", which="Quelle affirmation sur {t} est exacte ?",
               ans="Réponse", steps="Ingrédients"),
    "it": dict(q=("Cosa si sa di {t}?", "In che modo {t} ha influenzato la {w} del suo tempo?"),
               write="Scrivi un breve testo su {t}.", story="Scrivi un breve racconto ambientato a {t}.",
               edit="Migliora lo stile del seguente passaggio:", cook="Come si prepara {t}?",
               calc="Calcola", which="Quale affermazione su {t} è corretta?",
               ans="Risposta", steps="Ingredienti"),
    "pl": dict(q=("Co wiadomo o {t}?", "Jak {t} wpłynął na {w} swojej epoki?"),
               write="Napisz krótki tekst o {t}.",
               story="Napisz krótkie opowiadanie, którego akcja dzieje się w {t}.",
               edit="Popraw styl następującego fragmentu:", cook="Jak przygotować {t}?",
               calc="Oblicz", which="Które zdanie o {t} jest prawdziwe?",
               ans="Odpowiedź", steps="Składniki"),
    "nl": dict(q=("Wat is er bekend over {t}?", "Hoe beïnvloedde {t} de {w} van die tijd?"),
               write="Schrijf een korte tekst over {t}.",
               story="Schrijf een kort verhaal dat zich afspeelt in {t}.",
               edit="Verbeter de stijl van de volgende passage:", cook="Hoe maak ik {t}?",
               calc="Bereken", which="Welke uitspraak over {t} is juist?",
               ans="Antwoord", steps="Ingrediënten"),
    "la": dict(q=("Quid de {t} scimus?", "Quomodo {t} {w} sui temporis mutavit?"),
               write="Scribe brevem textum de {t}.", story="Scribe brevem fabulam de {t}.",
               edit="Emenda stilum huius loci:", cook="Quomodo {t} paro?",
               calc="Computa", which="Quae sententia de {t} vera est?",
               ans="Responsum", steps="Ingredientia"),
    "pt": dict(q=("O que se sabe sobre {t}?", "Como {t} influenciou a {w} da sua época?"),
               write="Escreva um texto curto sobre {t}.", story="Escreva um conto curto passado em {t}.",
               edit="Melhore o estilo do seguinte trecho:", cook="Como preparo {t}?",
               calc="Calcule", which="Qual afirmação sobre {t} está correta?",
               ans="Resposta", steps="Ingredientes"),
    "sv": dict(q=("Vad vet man om {t}?", "Hur påverkade {t} sin tids {w}?"),
               write="Skriv en kort text om {t}.", story="Skriv en kort berättelse som utspelar sig i {t}.",
               edit="Förbättra stilen i följande stycke:", cook="Hur lagar jag {t}?",
               calc="Beräkna", which="Vilket påstående om {t} är korrekt?",
               ans="Svar", steps="Ingredienser"),
}
_DISHES = ("gazpacho", "pierogi", "risotto", "ratatouille", "stroopwafels", "käsespätzle",
           "shakshuka", "focaccia", "moussaka", "pad thai")
_WRITING_TAGS = (
    "length_constraints:number_sentences[{n}]", "oulipo:avoid_letter[{c}]",
    "length_constraints:number_words[{w}]", "format:title", "style:formal", "case:lowercase",
    "punctuation:no_comma", "detectable_format:number_bullet_lists[{b}]",
    "keywords:include[{k}]", "startend:end_checker[{k}]", "format:json",
)
_MCQ_DOMAINS = ("history", "geography", "biology", "literature", "physics", "art history")
_MCQ_KINDS = ("fact recall", "inference", "definition", "chronology")
_MCQ_SHAPES = ("standard", "negative", "best_answer")

#: Guaranteed minimum per rare exercise in shards of at least PLANT_MIN_ROWS rows.
PLANT_MIN_ROWS = 200
_MIN_PER_RARE_EXERCISE = 3
_FAILED_SENTINEL = "result:Failed after maximum attempts"


# --------------------------------------------------------------------------------------------
# Per-exercise row bodies
# --------------------------------------------------------------------------------------------


def _tmpl(lang: str | None) -> dict:
    return _T.get(lang or "en", _T["en"])


def _question(rng: random.Random, lang: str | None, topic: str) -> str:
    q = rng.choice(_tmpl(lang)["q"]).format(t=topic, w=rng.choice(vocab(lang)))
    if rng.random() < 0.75:  # real queries are ~160 characters: add some context
        q = " ".join(sentence(rng, lang, 6, 12) for _ in range(rng.randint(1, 2))) + " " + q
    return q


def _wiki_url(lang: str | None, topic: str) -> str:
    return f"https://{lang or 'en'}.wikipedia.org/wiki/{topic.replace(' ', '_')}"


def _reasoning(rng: random.Random, lang: str | None, query: str, n_chars: int) -> str:
    """SYNTH-style terse reasoning: bullets and logic symbols."""
    lines = [f'Query: "{query[:80]}" → {sentence(rng, lang)}', ""]
    total = len(lines[0])
    while total < n_chars:
        if rng.random() < 0.12:
            line = f"### {words(rng, lang, 3).capitalize()}"
        else:
            line = f"{rng.choice(SYMBOLS + ('-', '?'))} {sentence(rng, lang)}"
        lines.append(line)
        total += len(line) + 1
    lines.append(f"∴ {sentence(rng, lang)} ✓")
    return "\n".join(lines)


def _answer_md(rng: random.Random, lang: str | None, topic: str, n_chars: int) -> str:
    """A markdown answer: bold lead, a heading, bullets, paragraphs."""
    parts = [f"**{topic}** {sentence(rng, lang)} {sentence(rng, lang)}"]
    total = len(parts[0])
    while total < n_chars:
        r = rng.random()
        if r < 0.25:
            part = f"### {words(rng, lang, 4).capitalize()}"
        elif r < 0.5:
            part = "\n".join(f"- **{words(rng, lang, 2)}**: {sentence(rng, lang, 5, 10)}"
                             for _ in range(rng.randint(2, 4)))
        else:
            part = " ".join(sentence(rng, lang) for _ in range(rng.randint(2, 4)))
        parts.append(part)
        total += len(part) + 2
    return "\n\n".join(parts)


def _num(v: float) -> str:
    """How a ``result:`` value is written: ``16020``, ``-195.45``, ``0.75``."""
    if float(v).is_integer():
        return str(int(v))
    return repr(round(v, 2))


def _wrong(rng: random.Random, v: float) -> float:
    """A plausible wrong result; a lost sign when the value is negative."""
    if v < 0:
        return -v
    return rng.choice([v + rng.choice([1, 2, 10, -1]), v * 10, round(v / 2, 2)])


def _mem_body(rng: random.Random, lang: str | None) -> dict:
    topic = rng.choice(TOPICS)
    query = _question(rng, lang, topic)
    return dict(
        query=query,
        query_seed_url=_wiki_url(lang, topic),
        query_seed_text=text_of_length(rng, lang, rng.randint(350, 1000)),
        constraints="",
        synthetic_reasoning=_reasoning(rng, lang, query, rng.randint(800, 1900)),
        synthetic_answer=_answer_md(rng, lang, topic, rng.randint(500, 1300)),
    )


def _math_exercise(rng: random.Random, lang: str | None, kind: str | None = None,
                   mode: str = "random") -> dict:
    """``result:<number>`` plus an answer that decorates it (``**16,020 pounds**``).

    ``mode`` ``random``: ~12% of answers show a wrong value; ``correct``: never;
    ``lost_sign``: a negative result shown without its sign, the classic real error.
    """
    lost_sign = mode == "lost_sign"
    t = _tmpl(lang)
    en = (lang or "en") == "en"
    label = "Answer" if en else t["ans"]
    if kind is None:
        kind = "temperature" if lost_sign else rng.choice(("weight", "money", "temperature", "ratio"))
    if kind == "weight":
        a, b = rng.randint(12, 400), rng.randint(15, 90)
        v: float = a * b
        story = (f"A freight company loads {a} crates that each weigh {b} pounds. "
                 "What is the total weight of the shipment?")
        expr = f"{a} × {b}"
        unit_fmt = "**{:,} pounds**" if en else "**{:,}**"

        def show(x: float) -> str:
            return unit_fmt.format(int(x))
    elif kind == "money":
        a = rng.randint(50_000, 300_000) / 100
        b, c = rng.randint(40_000, 250_000) / 100, rng.randint(2_000, 60_000) / 100
        v = round(a - b - c, 2)
        story = (f"Maria starts the month with ${a:,.2f}, pays ${b:,.2f} in rent and "
                 f"${c:,.2f} for groceries. What is her balance at the end of the month?")
        expr = f"{a:.2f} − {b:.2f} − {c:.2f}"

        def show(x: float) -> str:
            return f"**{label}: {'-' if x < 0 else ''}${abs(x):,.2f}**"
    elif kind == "temperature":
        t0 = rng.randint(-5, 12)
        d = rng.randint(t0 + 6, t0 + 30) if lost_sign else rng.randint(3, 30)  # lost: v < 0
        v = t0 - d
        story = (f"At midnight the temperature was {t0} °C. By dawn it had dropped by {d} "
                 "degrees. What was the temperature at dawn?")
        expr = f"{t0} − {d}"

        def show(x: float) -> str:
            return f"The temperature at dawn is **{_num(x)} °C**." if en else f"**{_num(x)} °C**"
    else:
        a, b = rng.randint(3, 97), rng.choice((4, 8, 20, 25, 40))
        v = round(a / b, 2)
        story = f"A recipe uses {a} grams of salt for {b} servings. How much salt is in one serving?"
        expr = f"{a} / {b}"

        def show(x: float) -> str:
            return f"≈ **{_num(x)} g**"
    query = story if en else f"{sentence(rng, lang, 6, 10)} {t['calc']}: {expr}"
    if lost_sign:
        shown = -v
    elif mode == "random" and rng.random() < 0.12:
        shown = _wrong(rng, v)
    else:
        shown = v
    answer = "\n\n".join([f"**{label}**", sentence(rng, lang), f"{expr} = {_num(v)}",
                           sentence(rng, lang), show(shown)])
    reasoning = (f"{expr} → ?\n● {sentence(rng, lang)}\n● {expr} = {_num(v)}\n"
                 f"⚠ {sentence(rng, lang)}\n∴ {_num(v)} ✓\n\n"
                 + text_of_length(rng, lang, rng.randint(300, 900)))
    return dict(query=query, query_seed_url=None, query_seed_text="",
                constraints=f"result:{_num(v)}", synthetic_reasoning=reasoning,
                synthetic_answer=answer)


def _math_mcq(rng: random.Random, lang: str | None, sentinel: bool = False) -> dict:
    """``result:<value of the correct option>`` and an answer ending in ``B. 1``."""
    x = rng.randint(-5, 12)
    a = rng.randint(2, 9)
    b = rng.randint(-20, 20)
    c = a * x + b
    options = [x]
    while len(options) < 4:
        d = x + rng.choice((-3, -2, -1, 1, 2, 3, 5))
        if d not in options:
            options.append(d)
    rng.shuffle(options)
    letters = "ABCD"
    correct = letters[options.index(x)]
    chosen = correct
    if rng.random() < 0.12:
        chosen = rng.choice([ch for ch in letters if ch != correct])
    lead = "Solve for x:" if (lang or "en") == "en" else f"{_tmpl(lang)['calc']} x:"
    listing = "\n".join(f"{letters[i]}. {o}" for i, o in enumerate(options))
    query = f"{lead} {a}x {'+' if b >= 0 else '-'} {abs(b)} = {c}\n\n{listing}"
    reasoning = "" if rng.random() < 0.10 else (
        f"{a}x {'+' if b >= 0 else '-'} {abs(b)} = {c} → {a}x = {c - b} → x = {x}\n● {sentence(rng, lang)}\n"
        f"✓ {letters[options.index(x)]}\n{text_of_length(rng, lang, rng.randint(200, 700))}")
    answer = f"{sentence(rng, lang)}\n\n{a}x = {c - b}, x = {x}\n\n{chosen}. {options[letters.index(chosen)]}"
    constraints = _FAILED_SENTINEL if sentinel or rng.random() < 0.03 else f"result:{x}"
    return dict(query=query, query_seed_url=_wiki_url(lang, rng.choice(TOPICS)),
                query_seed_text=text_of_length(rng, lang, rng.randint(200, 500)),
                constraints=constraints, synthetic_reasoning=reasoning, synthetic_answer=answer)


def _mcq(rng: random.Random, lang: str | None) -> dict:
    topic = rng.choice(TOPICS)
    options = [sentence(rng, lang, 4, 8) for _ in range(4)]
    letter = rng.choice("ABCD")
    query = _tmpl(lang)["which"].format(t=topic) + "\n\n" + "\n".join(
        f"{ch}. {o}" for ch, o in zip("ABCD", options))
    constraints = (f"domain:{rng.choice(_MCQ_DOMAINS)}, exercise:{rng.choice(_MCQ_KINDS)}, "
                   f"answer_shape:{rng.choice(_MCQ_SHAPES)}")
    explanation = _answer_md(rng, lang, topic, rng.randint(200, 600))
    answer = f"{letter}. {options['ABCD'.index(letter)]}\n\n{explanation}"
    return dict(query=query, query_seed_url=_wiki_url(lang, topic),
                query_seed_text=text_of_length(rng, lang, rng.randint(300, 800)),
                constraints=constraints,
                synthetic_reasoning=_reasoning(rng, lang, query, rng.randint(500, 1200)),
                synthetic_answer=answer)


def _rag(rng: random.Random, lang: str | None, long_sources: bool = False) -> dict:
    """Sources as ``<source_i>`` blocks in ``constraints``; the answer cites them with ``<ref>``."""
    topic = rng.choice(TOPICS)
    n_sources = 4 if long_sources else rng.randint(2, 4)
    per_source = 3_600 if long_sources else rng.randint(250, 800)  # long: >13k characters
    sources = [text_of_length(rng, lang, per_source) for _ in range(n_sources)]
    constraints = "\n\n".join(f"<source_{i}>\n{s}\n</source_{i}>" for i, s in enumerate(sources, 1))
    cites = []
    for i in rng.sample(range(1, n_sources + 1), k=min(n_sources, 2)):
        quote = sources[i - 1].split(". ")[0][:120]
        cites.append(f'{sentence(rng, lang)} <ref name="source_{i}">{quote}</ref>')
    answer = "\n\n".join(cites + [_answer_md(rng, lang, topic, rng.randint(300, 700))])
    query = _question(rng, lang, topic)
    return dict(query=query, query_seed_url=_wiki_url(lang, topic),
                query_seed_text=text_of_length(rng, lang, rng.randint(300, 700)),
                constraints=constraints,
                synthetic_reasoning=_reasoning(rng, lang, query, rng.randint(600, 1500)),
                synthetic_answer=answer)


def _writing_tags(rng: random.Random, lang: str | None) -> str:
    chosen = rng.sample(_WRITING_TAGS, k=rng.randint(1, 3))
    return ", ".join(t.format(n=rng.randint(3, 20), c=rng.choice("etaoins"), w=rng.randint(50, 400),
                              b=rng.randint(2, 5), k=rng.choice(vocab(lang))) for t in chosen)


def _writing(rng: random.Random, lang: str | None, exercise: str) -> dict:
    topic = rng.choice(TOPICS)
    t = _tmpl(lang)
    if exercise == "editing":
        query = f"{t['edit']}\n\n{text_of_length(rng, lang, rng.randint(200, 500))}"
        reasoning = ""
    elif exercise == "constrained writing":
        query = t["write"].format(t=topic)
        reasoning = ""
    else:  # creative writing
        query = t["story"].format(t=topic)
        reasoning = "" if rng.random() < 0.07 else _reasoning(rng, lang, query, rng.randint(500, 1500))
    constraints = _writing_tags(rng, lang)
    query += f"\n\n{constraints}" if rng.random() < 0.5 else ""
    return dict(query=query, query_seed_url=_wiki_url(lang, topic),
                query_seed_text=text_of_length(rng, lang, rng.randint(300, 800)),
                constraints=constraints, synthetic_reasoning=reasoning,
                synthetic_answer=text_of_length(rng, lang, rng.randint(400, 1200)))


def _cooking(rng: random.Random, lang: str | None) -> dict:
    dish = rng.choice(_DISHES)
    t = _tmpl(lang)
    query = t["cook"].format(t=dish)
    ingredients = "\n".join(f"- {rng.randint(1, 500)} g {words(rng, lang, 2)}"
                            for _ in range(rng.randint(3, 7)))
    steps = "\n".join(f"{i}. {sentence(rng, lang)}" for i in range(1, rng.randint(4, 8)))
    answer = f"## {dish.capitalize()}\n\n### {t['steps']}\n{ingredients}\n\n{steps}"
    return dict(query=query, query_seed_url=_wiki_url(lang, dish),
                query_seed_text=text_of_length(rng, lang, rng.randint(300, 700)), constraints="",
                synthetic_reasoning=_reasoning(rng, lang, query, rng.randint(400, 1200)),
                synthetic_answer=answer)


def _body(rng: random.Random, exercise: str, lang: str | None) -> dict:
    if exercise == "memorization":
        return _mem_body(rng, lang)
    if exercise == "math exercise":
        return _math_exercise(rng, lang)
    if exercise == "math mcq":
        return _math_mcq(rng, lang)
    if exercise == "mcq":
        return _mcq(rng, lang)
    if exercise == "rag":
        return _rag(rng, lang)
    if exercise == "cooking":
        return _cooking(rng, lang)
    return _writing(rng, lang, exercise)


def _synth_id(exercise: str, lang: str | None, shard_index: int, number: int) -> str:
    prefix = _ID_PREFIX[exercise]
    if exercise == "memorization" and lang and lang != "en":
        prefix += "_" + _LANGUAGE_NAMES.get(lang, lang)
    return f"{prefix}_{shard_index}_{number}"


# --------------------------------------------------------------------------------------------
# Rows and quirks
# --------------------------------------------------------------------------------------------

_TEXT_FIELDS = ("query", "synthetic_reasoning", "synthetic_answer")


def _random_quirks(rng: random.Random, row: dict) -> None:
    """Quirks at roughly their real rates."""
    r = rng.random()
    if r < 0.025:  # ~2.5% rows with an empty query, reasoning or answer
        # (reasoning only where there is some: writing rows keep their "" reasoning)
        fields = _TEXT_FIELDS if row["synthetic_reasoning"] else ("query", "synthetic_answer")
        row[rng.choice(fields)] = "" if rng.random() < 0.7 else None
    if rng.random() < 0.004:
        field = rng.choice(_TEXT_FIELDS)
        if row[field]:
            row[field] = insert_at_random(rng, row[field], "\x00")
    if rng.random() < 0.004:
        field = rng.choice(("query", "synthetic_answer"))
        if row[field]:
            row[field] = insert_at_random(rng, row[field], rng.choice(HARMONY_MARKERS))
    if rng.random() < 0.02:
        field = rng.choice(("query", "synthetic_answer"))
        if row[field]:
            snippet = rng.choice(EMOJI + CJK_SNIPPETS + RTL_SNIPPETS)
            row[field] = insert_at_random(rng, row[field], snippet)
    r = rng.random()
    if r < 0.01:
        row["script"] = None
    elif r < 0.025:
        row["script"] = rng.choice(("dialogue", "letter", "formal"))
    r = rng.random()
    if r < 0.085:
        row["additional_seed_url"] = ""
    elif r < 0.09:
        row["additional_seed_url"] = None


def _set(field: str, value):
    def apply(rng: random.Random, row: dict) -> None:
        row[field] = value
    return apply


def _insert(field: str, snippet: str):
    def apply(rng: random.Random, row: dict) -> None:
        row[field] = insert_at_random(rng, row[field] or sentence(rng, row["language"]), snippet)
    return apply


def _overlong(rng: random.Random, row: dict) -> None:
    row["language"] = "en"
    row["synthetic_answer"] = "**Full chronicle**\n\n" + long_varied_text(rng, 60_000)


def _null_language(rng: random.Random, row: dict) -> None:
    # Planted on English rows only, so the text and the synth_id stay consistent.
    row["language"] = None


#: One of each on distinct memorization rows of every shard with >= PLANT_MIN_ROWS rows.
_PLANTS = (
    _overlong,
    _null_language,
    _set("query", ""), _set("query", None),
    _set("synthetic_answer", ""), _set("synthetic_answer", None),
    _set("synthetic_reasoning", ""), _set("synthetic_reasoning", None),
    _set("additional_seed_url", None), _set("additional_seed_url", ""),
    _set("script", None), _set("query_seed_url", ""),
    _insert("synthetic_answer", "\x00"), _insert("query", "\x00"),
    _insert("synthetic_reasoning", "\x00"),
    *(_insert("synthetic_answer", m) for m in HARMONY_MARKERS),
    _insert("query", "<|start|>assistant<|channel|>final<|message|>"),
    _insert("synthetic_answer", "🚀👩‍🔬🇫🇷"),
    _insert("synthetic_answer", CJK_SNIPPETS[0]),
    _insert("synthetic_answer", RTL_SNIPPETS[0]), _insert("query", RTL_SNIPPETS[1]),
)


def synth_rows(shard_index: int, n_rows: int, seed: int) -> list[dict]:
    """Rows of one fake SYNTH shard, deterministic given ``(seed, shard_index, n_rows)``.

    Every row has all ``SYNTH_COLUMNS`` keys. ``synth_id`` embeds ``shard_index`` so ids are
    unique across shards.
    """
    rng = random.Random(f"pleias_synth:{seed}:{shard_index}")
    exercises = rng.choices(EXERCISES, weights=_EXERCISE_WEIGHTS, k=n_rows)
    languages = rng.choices(_LANGUAGES, weights=_LANGUAGE_WEIGHTS, k=n_rows)
    plant = n_rows >= PLANT_MIN_ROWS
    forced: set[int] = set()
    if plant:  # every rare exercise at least a few times, at random positions
        for exercise in EXERCISES[1:]:
            while exercises.count(exercise) < _MIN_PER_RARE_EXERCISE:
                i = rng.choice([j for j, e in enumerate(exercises) if e == "memorization"])
                exercises[i] = exercise
                forced.add(i)
    numbers = rng.sample(range(1, max(200_000, 4 * n_rows)), n_rows)

    rows = []
    for i in range(n_rows):
        exercise, lang = exercises[i], languages[i]
        row = {
            "synth_id": _synth_id(exercise, lang, shard_index, numbers[i]),
            "language": lang,
            "exercise": exercise,
            "model": rng.choice(_MODELS),
            "additional_seed_url": _wiki_url(lang, rng.choice(TOPICS)),
            "seed_license": rng.choice(_LICENSES),
            "script": "",
        }
        row.update(_body(rng, exercise, lang))
        if exercise == "math exercise":
            row["additional_seed_url"] = ""
        _random_quirks(rng, row)
        rows.append(row)

    null_words: set[int] = {i for i in range(n_rows) if rng.random() < 0.01}
    if plant:
        mem = [i for i in range(n_rows) if exercises[i] == "memorization" and i not in forced
               and languages[i] == "en"]
        targets = rng.sample(mem, k=len(_PLANTS) + 1)
        for apply, i in zip(_PLANTS, targets):
            apply(rng, rows[i])
        null_words.add(targets[-1])
        by_ex = {e: [i for i in range(n_rows) if exercises[i] == e] for e in EXERCISES}
        lost, weight, money = rng.sample(by_ex["math exercise"], k=3)
        rows[lost].update(_math_exercise(rng, "en", "temperature", mode="lost_sign"))
        rows[weight].update(_math_exercise(rng, "en", "weight", mode="correct"))
        body = _math_exercise(rng, "en", "money", mode="correct")
        while not body["constraints"].startswith("result:-"):  # **Answer: -$195.45**
            body = _math_exercise(rng, "en", "money", mode="correct")
        rows[money].update(body)
        for i in (lost, weight, money):
            rows[i]["language"] = "en"
        i = rng.choice(by_ex["math mcq"])
        rows[i].update(_math_mcq(rng, languages[i], sentinel=True))
        i = rng.choice(by_ex["rag"])
        rows[i].update(_rag(rng, languages[i], long_sources=True))
        _plant_duplicates(seed, shard_index, rows, [i for i in mem if i not in set(targets)])

    for i, row in enumerate(rows):
        answer = row["synthetic_answer"]
        row["words"] = None if i in null_words or answer is None else len(answer.split())
    return [{k: row[k] for k in SYNTH_COLUMNS} for row in rows]


def _plant_duplicates(seed: int, shard_index: int, rows: list[dict], candidates: list[int]) -> None:
    """Exact duplicates under other ids (the real source has them): a later row that repeats an
    earlier row's query and answer up to case and whitespace, and one row whose content is the
    same in every shard (kept in the first shard of the list only). A separate random stream,
    so the other rows stay as they were."""
    rng = random.Random(f"pleias_synth:{seed}:{shard_index}:duplicates")
    usable = [i for i in candidates if clean(rows[i]["query"]) and clean(rows[i]["synthetic_answer"])]
    first, later = sorted(rng.sample(usable, k=2))
    shared = rng.choice([i for i in usable if i not in (first, later)])
    rows[later]["query"] = "  " + rows[first]["query"].upper().replace(" ", "  ") + "\n"
    rows[later]["synthetic_answer"] = rows[first]["synthetic_answer"].replace(" ", " \t", 3)
    common = random.Random(f"pleias_synth:{seed}:shared duplicate")
    rows[shared]["query"] = _question(common, "en", "Hansa")
    rows[shared]["synthetic_answer"] = _answer_md(common, "en", "Hansa", 600)


def clean(text) -> str:
    return text.replace("\x00", "").strip() if isinstance(text, str) else ""


def make_synth_table(rows: Iterable[dict]) -> pa.Table:
    """A ``SYNTH_SCHEMA`` table from rows that may give only a few fields.

    Defaults make a plain English memorization row: ``synth_id`` ``plant_<i>``, ``language``
    ``en``, ``exercise`` ``memorization``, ``model`` ``plant``, ``query_seed_url`` None, other
    strings ``""``, ``words`` counted from the answer. Unknown keys raise (typos in tests).
    """
    full = []
    for i, row in enumerate(rows):
        unknown = set(row) - set(SYNTH_COLUMNS)
        if unknown:
            raise ValueError(f"unknown SYNTH columns: {sorted(unknown)}")
        out = {name: "" for name in _STRING_COLUMNS}
        out.update(synth_id=f"plant_{i}", language="en", exercise="memorization", model="plant",
                   query_seed_url=None)
        out.update(row)
        if "words" not in row:
            answer = out["synthetic_answer"]
            out["words"] = len(answer.split()) if isinstance(answer, str) else None
        full.append(out)
    return pa.Table.from_pylist(full, schema=SYNTH_SCHEMA)


def write_synth_shard(path: str | Path, rows: list[dict]) -> Path:
    """Write one shard like the real ones: one row group, snappy, with statistics."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = make_synth_table(rows)
    pq.write_table(table, path, compression="snappy", row_group_size=max(1, table.num_rows),
                   write_statistics=True, use_dictionary=True)
    return path


def shard_index(name: str, default: int) -> int:
    """``synth_010.parquet`` → 10 (``default`` when the name holds no number)."""
    match = re.search(r"(\d+)", Path(name).name)
    return int(match.group(1)) if match else default


def write_synth_source(out_dir: str | Path, shard_names: list[str], rows_per_shard: int,
                       seed: int) -> list[Path]:
    """Write ``out_dir/<name>`` for each shard name (``synth_010.parquet``, …)."""
    out_dir = Path(out_dir)
    paths = []
    for position, name in enumerate(shard_names):
        rows = synth_rows(shard_index(name, position), rows_per_shard, seed)
        paths.append(write_synth_shard(out_dir / name, rows))
    return paths
