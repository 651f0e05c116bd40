"""Product-family tables behind the demo catalogue.

Each category is one table: a list of model rows (code, display noun, price,
availability and a handful of category-specific parameters) plus two
functions that turn a row's parameters into a spec table and a description.
Everything else a product carries (slug, SKU, MPN, GTIN, path) is derived in
:mod:`showroom.demo_site.catalog`, so adding a model is a one-line change here.

Model codes are chosen so that no code is a substring of another within a
brand ("NW-5" vs "R-5" is fine, "Portal 2" vs "Portal 2 Pro" would not be):
questions such as "What is the woofer size of the Northwind NW-8?" must point
at exactly one product.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Params = Mapping[str, Any]
SpecRows = list[tuple[str, str]]

# Spec sheets use typographic characters; spelled as escapes so the source stays ASCII-unambiguous.
EN_DASH = "\u2013"
TIMES = "\u00d7"


@dataclass(frozen=True)
class Model:
    """One row of a family table."""

    code: str
    noun: str
    price: float
    availability: str
    params: tuple[tuple[str, Any], ...]

    @property
    def p(self) -> dict[str, Any]:
        return dict(self.params)


def model(code: str, noun: str, price: float, availability: str = "InStock", **params: Any) -> Model:
    return Model(code, noun, float(price), availability, tuple(sorted(params.items())))


@dataclass(frozen=True)
class CategoryTable:
    """A category: its models and how to describe them."""

    slug: str
    name: str
    sku_code: str
    blurb: str
    specs: Callable[[Params], SpecRows]
    describe: Callable[[str, Params], str]
    models: tuple[Model, ...]


@dataclass(frozen=True)
class BrandTable:
    slug: str
    name: str
    short_name: str
    tagline: str
    sku_prefix: str
    gtin_prefix: str  # 7 digits: GS1-style company prefix (fictional)
    warranty_years: int
    return_days: int
    firmware_tool: str
    support_email: str
    support_phone: str
    support_hours: str
    shipping_regions: tuple[str, ...]
    categories: tuple[CategoryTable, ...]


# -- formatting helpers -------------------------------------------------------


def _num(x: float) -> str:
    """5.0 -> "5", 6.5 -> "6.5": spec sheets never print a trailing ".0"."""
    return f"{x:g}"


def _hz(x: float) -> str:
    return f"{_num(x / 1000)} kHz" if x >= 1000 else f"{_num(x)} Hz"


def _freq(low: float, high: float) -> str:
    return f"{_hz(low)} {EN_DASH} {_hz(high)}"


def _yes_no(flag: bool) -> str:
    return "Yes" if flag else "No"


def _lc_first(text: str) -> str:
    """Lower-case only the first letter, so "Digital FM" reads "digital FM" mid-sentence."""
    return text[:1].lower() + text[1:]


def _a(phrase: str) -> str:
    """Prefix the right indefinite article ("an 8-voice", "a 16-voice", "an analog")."""
    spoken_vowel = phrase[:1].lower() in "aeio" or phrase.startswith(("8", "11", "18"))
    return f"{'an' if spoken_vowel else 'a'} {phrase}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# -- studio monitors ----------------------------------------------------------


def _monitor_specs(p: Params) -> SpecRows:
    woofer = p["woofer"]
    # Cabinet size and weight scale with the woofer, as they do on real ranges.
    height = round(woofer * 33 + 95)
    width = round(woofer * 22 + 70)
    depth = round(woofer * 26 + 90)
    weight = round(0.6 + woofer * 0.75 + p["watts"] / 200, 1)
    return [
        ("Woofer size", f"{_num(woofer)} in"),
        ("Tweeter", p["tweeter"]),
        *([("Midrange", p["mid"])] if "mid" in p else []),
        ("Amplifier power", f"{p['watts']} W"),
        ("Amplifier type", p.get("amp", "Bi-amplified Class D")),
        ("Frequency response", _freq(*p["freq"])),
        ("Max SPL", f"{p['spl']} dB"),
        ("Inputs", p["inputs"]),
        (f"Dimensions (H {TIMES} W {TIMES} D)", f"{height} {TIMES} {width} {TIMES} {depth} mm"),
        ("Weight", f"{_num(weight)} kg"),
    ]


def _monitor_describe(name: str, p: Params) -> str:
    woofer = p["woofer"]
    if p["tweeter"].startswith("None"):
        role = (
            f"The {name} is a powered subwoofer with a {_num(woofer)} in long-throw driver "
            f"and {p['watts']} W of amplification."
        )
        use = "Its adjustable crossover extends any monitor pair down into the sub-bass."
    else:
        mid = f", a {p['mid']} driver" if "mid" in p else ""
        role = (
            f"The {name} is a {'three' if mid else 'two'}-way active monitor pairing "
            f"{_a(_num(woofer))} in woofer{mid} and {_a(p['tweeter'])} tweeter with "
            f"{p['watts']} W of amplification."
        )
        if woofer <= 4:
            use = "Its compact cabinet suits desktop production and podcast rooms."
        elif woofer <= 6.5:
            use = "It is built for near-field mixing in small and medium control rooms."
        else:
            use = "Its extended low end makes it a mid-field choice for larger rooms."
    return (
        f"{role} It covers {_freq(*p['freq'])} and reaches {p['spl']} dB max SPL. {use} "
        "Rear-panel room controls let you tune the response to your space."
    )


# fmt: off
_MONITOR_MODELS: tuple[Model, ...] = (
    model("NW-3", "Studio Monitor", 149, woofer=3, tweeter="0.75 in silk dome", watts=30,
          freq=(80, 20000), spl=98, inputs="1/4 in TRS, RCA, 3.5 mm aux",
          amp="Class D"),
    model("NW-4", "Studio Monitor", 199, woofer=4, tweeter="1 in silk dome", watts=40,
          freq=(60, 22000), spl=101, inputs="XLR, 1/4 in TRS, RCA"),
    model("NW-5", "Studio Monitor", 349, woofer=5, tweeter="1 in silk dome", watts=55,
          freq=(43, 40000), spl=104, inputs="XLR, 1/4 in TRS"),
    model("NW-6", "Studio Monitor", 449, woofer=6.5, tweeter="1 in silk dome", watts=80,
          freq=(40, 36000), spl=107, inputs="XLR, 1/4 in TRS"),
    model("NW-7", "Studio Monitor", 549, "OutOfStock", woofer=7,
          tweeter="1 in aluminum dome", watts=100, freq=(38, 35000), spl=109,
          inputs="XLR, 1/4 in TRS"),
    model("NW-8", "Studio Monitor", 699, woofer=8, tweeter="1 in aluminum dome", watts=130,
          freq=(35, 33000), spl=111, inputs="XLR, 1/4 in TRS"),
    model("R-5", "Reference Monitor", 899, woofer=5.25, tweeter="1.5 in AMT ribbon",
          watts=90, freq=(45, 45000), spl=105, inputs="XLR, AES3 digital"),
    model("R-6", "Reference Monitor", 1199, woofer=6.5, tweeter="1.5 in AMT ribbon",
          watts=120, freq=(39, 46000), spl=108, inputs="XLR, AES3 digital"),
    model("R-8", "Reference Monitor", 1599, woofer=8, tweeter="1.5 in AMT ribbon",
          watts=180, freq=(33, 48000), spl=112, inputs="XLR, AES3 digital"),
    model("R-10", "Reference Monitor", 2499, "PreOrder", woofer=10,
          tweeter="1.5 in AMT ribbon", mid="4 in midrange", watts=250, freq=(29, 48000),
          spl=116, inputs="XLR, AES3 digital", amp="Tri-amplified Class D"),
    model("S-10", "Studio Subwoofer", 799, woofer=10, tweeter="None (subwoofer)",
          watts=200, freq=(22, 150), spl=113, inputs=f"2 {TIMES} XLR in, 2 {TIMES} XLR thru",
          amp="Class D"),
)
# fmt: on

STUDIO_MONITORS = CategoryTable(
    slug="studio-monitors",
    name="Studio Monitors",
    sku_code="SM",
    blurb="Active near-field and reference monitors for accurate mixing.",
    specs=_monitor_specs,
    describe=_monitor_describe,
    models=_MONITOR_MODELS,
)

# -- headphones ---------------------------------------------------------------


def _headphone_specs(p: Params) -> SpecRows:
    return [
        ("Type", p["kind"]),
        ("Driver size", p["driver"]),
        ("Impedance", f"{p['ohms']} Ω"),
        ("Sensitivity", f"{p['sens']} dB SPL/mW"),
        ("Frequency response", _freq(*p["freq"])),
        ("Weight", f"{p['grams']} g"),
        ("Cable", p["cable"]),
    ]


def _headphone_describe(name: str, p: Params) -> str:
    if p["kind"] == "In-ear":
        body = (
            f"The {name} are in-ear monitors with a {p['driver'].lower()} design, "
            f"weighing just {p['grams']} g per side."
        )
        use = "They isolate stage noise for performers and drummers."
        care = "Ear tips and cable are user-replaceable."
    else:
        body = (
            f"The {name} are {p['kind'].lower()} headphones built around a "
            f"{p['driver']} driver with {p['ohms']} Ω impedance."
        )
        use = (
            "The closed design keeps bleed out of the microphone when tracking."
            if p["kind"] == "Closed-back"
            else "The open design gives a wide, natural soundstage for mixing."
        )
        care = "Ear pads and cable are user-replaceable."
    return f"{body} Frequency response spans {_freq(*p['freq'])}. {use} {care}"


# fmt: off
_HEADPHONE_MODELS: tuple[Model, ...] = (
    model("H-100", "Studio Headphones", 149, kind="Closed-back", driver="40 mm dynamic",
          ohms=32, sens=98, freq=(15, 22000), grams=230,
          cable="3 m coiled, 3.5 mm with 1/4 in adapter"),
    model("H-150", "Studio Headphones", 179, "OutOfStock", kind="Closed-back",
          driver="40 mm dynamic", ohms=38, sens=100, freq=(12, 24000), grams=245,
          cable="3 m straight, 3.5 mm with 1/4 in adapter"),
    model("H-200", "Studio Headphones", 199, kind="Closed-back", driver="45 mm dynamic",
          ohms=47, sens=99, freq=(10, 28000), grams=262,
          cable="Detachable 3 m straight and 1.2 m coiled"),
    model("H-250", "Studio Headphones", 229, "OutOfStock", kind="Semi-open",
          driver="45 mm dynamic", ohms=62, sens=97, freq=(8, 30000), grams=270,
          cable="Detachable 3 m straight"),
    model("H-300", "Studio Headphones", 279, kind="Closed-back", driver="50 mm dynamic",
          ohms=80, sens=96, freq=(7, 32000), grams=295,
          cable="Detachable 3 m straight and 1.2 m coiled"),
    model("H-350", "Studio Headphones", 329, kind="Open-back", driver="50 mm dynamic",
          ohms=150, sens=95, freq=(6, 34000), grams=310, cable="Detachable 3 m straight"),
    model("H-400", "Studio Headphones", 399, kind="Open-back", driver="50 mm dynamic",
          ohms=250, sens=94, freq=(5, 35000), grams=340,
          cable="Detachable 3 m straight, 4-pin XLR option"),
    model("H-500", "Studio Headphones", 499, kind="Open-back",
          driver="53 mm planar magnetic", ohms=45, sens=93, freq=(5, 40000), grams=420,
          cable="Detachable 3 m balanced, 4.4 mm"),
    model("H-600", "Studio Headphones", 699, "PreOrder", kind="Open-back",
          driver="70 mm planar magnetic", ohms=60, sens=92, freq=(4, 50000), grams=460,
          cable="Detachable 3 m balanced, 4-pin XLR"),
    model("E-2", "In-Ear Monitors", 249, kind="In-ear", driver="Dual balanced armature",
          ohms=22, sens=112, freq=(20, 18000), grams=6, cable="1.2 m detachable MMCX"),
    model("E-4", "In-Ear Monitors", 449, kind="In-ear", driver="Quad balanced armature",
          ohms=18, sens=115, freq=(18, 20000), grams=7, cable="1.2 m detachable MMCX"),
)
# fmt: on

HEADPHONES = CategoryTable(
    slug="headphones",
    name="Headphones",
    sku_code="HP",
    blurb="Closed, open and in-ear headphones for tracking, mixing and the stage.",
    specs=_headphone_specs,
    describe=_headphone_describe,
    models=_HEADPHONE_MODELS,
)

# -- audio interfaces ---------------------------------------------------------


def _interface_specs(p: Params) -> SpecRows:
    return [
        (
            "Inputs",
            f"{p['ins']} ({p['pre']} mic/line, {p['ins'] - p['pre']} line/digital)"
            if p["ins"] > p["pre"]
            else f"{p['ins']} mic/line/instrument",
        ),
        ("Outputs", f"{p['outs']} line + {p['phones']} headphone"),
        ("Mic preamps", f"{p['pre']}, {p['gain']} dB gain"),
        ("Max sample rate", f"{p['rate']} kHz"),
        ("Bit depth", f"{p['bits']}-bit"),
        ("Connection", p["conn"]),
        ("MIDI I/O", _yes_no(p["midi"])),
        ("ADAT / S/PDIF", p.get("digital", "None")),
        ("Phantom power", "+48 V"),
    ]


def _interface_describe(name: str, p: Params) -> str:
    scale = (
        "a compact interface for solo recording"
        if p["pre"] <= 2
        else "a desktop interface for small bands and podcasts"
        if p["pre"] <= 4
        else "a rack interface for full band tracking"
    )
    return (
        f"The {name} is {scale}, with {p['pre']} mic preamps, {p['ins']} inputs and "
        f"{p['outs']} outputs over {p['conn']}. It records at up to {p['rate']} kHz / "
        f"{p['bits']}-bit with near-zero-latency direct monitoring. "
        "It is class compliant on macOS and ships with drivers for Windows."
    )


# fmt: off
_INTERFACE_MODELS: tuple[Model, ...] = (
    model("Portal 2", "Audio Interface", 179, ins=2, outs=2, phones=1, pre=2, gain=56,
          rate=192, bits=24, conn="USB-C (USB 2.0)", midi=False),
    model("Portal 4", "Audio Interface", 299, ins=4, outs=4, phones=1, pre=2, gain=60,
          rate=192, bits=24, conn="USB-C (USB 2.0)", midi=True),
    model("Portal 6", "Audio Interface", 399, ins=6, outs=6, phones=2, pre=4, gain=60,
          rate=192, bits=24, conn="USB-C (USB 2.0)", midi=True),
    model("Portal 8", "Audio Interface", 549, ins=8, outs=8, phones=2, pre=4, gain=62,
          rate=192, bits=32, conn="USB-C (USB 3.0)", midi=True,
          digital="S/PDIF coaxial"),
    model("Portal 12", "Audio Interface", 799, "OutOfStock", ins=12, outs=10, phones=2,
          pre=8, gain=62, rate=192, bits=24, conn="USB-C (USB 3.0)", midi=True,
          digital="S/PDIF coaxial"),
    model("Portal 18", "Audio Interface", 1099, ins=18, outs=20, phones=2, pre=8,
          gain=65, rate=192, bits=24, conn="USB-C (USB 3.0)", midi=True,
          digital="ADAT (8 ch) and S/PDIF"),
    model("Portal 24", "Audio Interface", 1499, ins=24, outs=26, phones=4, pre=8,
          gain=65, rate=192, bits=32, conn="USB-C (USB 3.0)", midi=True,
          digital=f"2 {TIMES} ADAT (16 ch) and S/PDIF"),
    model("Flux 2", "Thunderbolt Audio Interface", 649, ins=2, outs=4, phones=1, pre=2,
          gain=68, rate=192, bits=24, conn="Thunderbolt 3", midi=False),
    model("Flux 4", "Thunderbolt Audio Interface", 999, ins=4, outs=8, phones=2, pre=4,
          gain=68, rate=192, bits=32, conn="Thunderbolt 3", midi=True,
          digital="S/PDIF optical"),
    model("Flux 8", "Thunderbolt Audio Interface", 1899, ins=16, outs=16, phones=2,
          pre=8, gain=70, rate=384, bits=32, conn="Thunderbolt 4", midi=True,
          digital="ADAT (8 ch) and AES3"),
)
# fmt: on

AUDIO_INTERFACES = CategoryTable(
    slug="audio-interfaces",
    name="Audio Interfaces",
    sku_code="AI",
    blurb="USB-C and Thunderbolt interfaces from 2 to 24 inputs.",
    specs=_interface_specs,
    describe=_interface_describe,
    models=_INTERFACE_MODELS,
)

# -- mixers -------------------------------------------------------------------


def _mixer_specs(p: Params) -> SpecRows:
    rows = [
        ("Mixer type", p["kind"]),
        ("Channels", str(p["channels"])),
        ("Mic preamps", str(p["pre"])),
        ("EQ", p["eq"]),
        ("USB audio", p["usb"]),
        ("Effects", p["fx"]),
        ("Aux sends", str(p["aux"])),
        ("Faders", p["faders"]),
        ("Phantom power", p.get("phantom", "+48 V, global switch")),
    ]
    if "power" in p:
        rows.append(("Power amplifier", p["power"]))
    return rows


def _mixer_describe(name: str, p: Params) -> str:
    fx = "" if p["fx"] == "None" else f" Built-in effects: {_lc_first(p['fx'])}."
    return (
        f"The {name} is {_a(p['kind'].lower())} mixer with {p['channels']} channels and "
        f"{p['pre']} mic preamps. Channel EQ is {p['eq']}, and the USB audio "
        f"interface records {p['usb']}.{fx} {_plural(p['aux'], 'aux send')} "
        f"{'handles' if p['aux'] == 1 else 'handle'} monitor mixes and outboard effects."
    )


# fmt: off
_MIXER_MODELS: tuple[Model, ...] = (
    model("MX-8", "Analog Mixer", 199, kind="Analog", channels=8, pre=4, eq="3-band",
          usb="2-in/2-out, 24-bit/48 kHz", fx="None", aux=1, faders="60 mm"),
    model("MX-12", "Analog Mixer", 299, kind="Analog", channels=12, pre=6,
          eq="3-band with sweepable mid", usb="2-in/2-out, 24-bit/96 kHz",
          fx="16 digital presets", aux=2, faders="60 mm"),
    model("MX-16", "Analog Mixer", 449, kind="Analog", channels=16, pre=10,
          eq="4-band with two sweepable mids", usb="16-in/2-out, 24-bit/96 kHz",
          fx="100 presets with tap tempo", aux=4, faders="60 mm"),
    model("MX-24", "Analog Mixer", 799, "OutOfStock", kind="Analog", channels=24, pre=16,
          eq="4-band semi-parametric", usb="24-in/2-out, 24-bit/96 kHz",
          fx="Dual 100-preset engines", aux=6, faders="100 mm"),
    model("DM-16", "Digital Mixer", 1299, kind="Digital", channels=16, pre=16,
          eq="4-band fully parametric", usb="32-in/32-out, 24-bit/96 kHz",
          fx="8 stereo FX engines", aux=8, faders="100 mm motorized",
          phantom="+48 V, per channel"),
    model("DM-24", "Digital Mixer", 1799, kind="Digital", channels=24, pre=24,
          eq="4-band fully parametric", usb="48-in/48-out, 24-bit/96 kHz",
          fx="8 stereo FX engines", aux=12, faders="100 mm motorized",
          phantom="+48 V, per channel"),
    model("DM-32", "Digital Mixer", 2299, "PreOrder", kind="Digital", channels=32, pre=32,
          eq="6-band fully parametric", usb="64-in/64-out, 24-bit/96 kHz",
          fx="16 stereo FX engines", aux=16, faders="100 mm motorized",
          phantom="+48 V, per channel"),
    model("DM-48", "Digital Mixer", 2499, kind="Digital", channels=48, pre=32,
          eq="6-band fully parametric", usb="64-in/64-out, 24-bit/96 kHz",
          fx="16 stereo FX engines", aux=20, faders="100 mm motorized",
          phantom="+48 V, per channel"),
    model("PX-4", "Podcast Mixer", 229, kind="Podcast", channels=4, pre=4,
          eq="2-band with voice presets", usb="4-in/2-out multitrack, 24-bit/48 kHz",
          fx="Compressor, de-esser and noise gate", aux=1, faders="60 mm"),
    model("PX-6", "Podcast Mixer", 349, "OutOfStock", kind="Podcast", channels=6, pre=4,
          eq="3-band with voice presets", usb="6-in/2-out multitrack, 24-bit/48 kHz",
          fx="Compressor, de-esser, noise gate and sound pads", aux=2,
          faders="60 mm"),
    model("LX-10", "Powered Mixer", 599, kind="Powered", channels=10, pre=6,
          eq="3-band", usb="2-in/2-out, 24-bit/48 kHz", fx="24 presets", aux=2,
          faders="60 mm", power=f"2 {TIMES} 400 W Class D"),
)
# fmt: on

MIXERS = CategoryTable(
    slug="mixers",
    name="Mixers",
    sku_code="MX",
    blurb="Analog, digital, podcast and powered mixers.",
    specs=_mixer_specs,
    describe=_mixer_describe,
    models=_MIXER_MODELS,
)

# -- synthesizers -------------------------------------------------------------


def _synth_specs(p: Params) -> SpecRows:
    voices = p["voices"]
    return [
        ("Synthesis engine", p["engine"]),
        ("Polyphony", "Monophonic" if voices == 1 else f"{voices} voices"),
        ("Oscillators", p["osc"]),
        ("Keys", p["keys"]),
        ("Filter type", p["filter"]),
        ("Sequencer", f"{p['steps']}-step"),
        ("Patch memory", f"{p['patches']} presets"),
        ("Outputs", p["outs"]),
    ]


def _synth_describe(name: str, p: Params) -> str:
    voices = "a monophonic" if p["voices"] == 1 else _a(f"{p['voices']}-voice")
    keys = "in a desktop format" if p["keys"].startswith("None") else f"with {p['keys'].split(',')[0].lower()}"
    return (
        f"The {name} is {voices} {_lc_first(p['engine'])} synthesizer {keys}. "
        f"Its oscillator section ({p['osc']}) feeds {_a(_lc_first(p['filter']))} filter. "
        f"A {p['steps']}-step sequencer and {p['patches']} preset slots make it "
        "equally at home in the studio and on stage."
    )


# fmt: off
_SYNTH_MODELS: tuple[Model, ...] = (
    model("Pulse Mini", "Synthesizer", 199, engine="Analog", voices=1,
          osc="2 oscillators", keys="25 mini keys, velocity sensitive",
          filter="24 dB/oct ladder low-pass", steps=16, patches=64,
          outs="1/4 in mono, 3.5 mm headphone"),
    model("Helix-M", "Synthesizer Module", 299, engine="Analog", voices=1,
          osc="3 oscillators plus sub", keys="None (desktop module)",
          filter="12 dB/oct state-variable multimode", steps=64, patches=256,
          outs="1/4 in mono, 1/4 in headphone"),
    model("Helix-1", "Monophonic Synthesizer", 449, engine="Analog", voices=1,
          osc="3 oscillators plus sub", keys="37 full-size keys, velocity sensitive",
          filter="24 dB/oct ladder low-pass", steps=64, patches=256,
          outs="1/4 in mono, 1/4 in headphone"),
    model("Orbit FM", "Synthesizer", 649, engine="Digital FM", voices=8,
          osc="6 operators", keys="37 full-size keys, velocity sensitive",
          filter="Multimode digital", steps=32, patches=500,
          outs="Stereo 1/4 in, 1/4 in headphone"),
    model("Prism 4", "Polyphonic Synthesizer", 899, "OutOfStock", engine="Analog",
          voices=4, osc="2 oscillators per voice",
          keys="37 full-size keys, velocity sensitive",
          filter="24 dB/oct ladder low-pass", steps=64, patches=256,
          outs="Stereo 1/4 in, 1/4 in headphone"),
    model("Prism 6", "Polyphonic Synthesizer", 1199, engine="Analog", voices=6,
          osc="2 oscillators per voice",
          keys="49 semi-weighted keys, velocity and aftertouch",
          filter="24 dB/oct ladder low-pass", steps=64, patches=512,
          outs="Stereo 1/4 in, 1/4 in headphone"),
    model("Prism 8", "Polyphonic Synthesizer", 1499, engine="Analog", voices=8,
          osc="3 oscillators per voice",
          keys="61 semi-weighted keys, velocity and aftertouch",
          filter="24 dB/oct ladder low-pass", steps=64, patches=512,
          outs="Stereo 1/4 in, 1/4 in headphone"),
    model("Prism 16", "Polyphonic Synthesizer", 2199, engine="Analog", voices=16,
          osc="3 oscillators per voice",
          keys="61 semi-weighted keys, velocity and aftertouch",
          filter="24 dB/oct ladder plus 12 dB/oct multimode", steps=128, patches=1024,
          outs="Stereo XLR and 1/4 in, 1/4 in headphone"),
    model("Nova 8", "Wavetable Synthesizer", 999, engine="Digital wavetable", voices=8,
          osc="3 wavetable oscillators per voice",
          keys="49 full-size keys, velocity sensitive",
          filter="Multimode digital (LP/HP/BP/notch)", steps=64, patches=1000,
          outs="Stereo 1/4 in, 1/4 in headphone"),
    model("Nova 16", "Wavetable Synthesizer", 1599, "PreOrder",
          engine="Digital wavetable", voices=16, osc="3 wavetable oscillators per voice",
          keys="61 full-size keys, velocity and aftertouch",
          filter="Multimode digital (LP/HP/BP/notch)", steps=128, patches=2000,
          outs="Stereo 1/4 in, 1/4 in headphone"),
    model("Titan 12", "Hybrid Synthesizer", 2499, engine="Hybrid analog/digital",
          voices=12, osc="4 oscillators per voice, 2 analog and 2 digital",
          keys="61 semi-weighted keys, velocity and polyphonic aftertouch",
          filter="Dual analog (ladder and state-variable)", steps=128, patches=2048,
          outs="2 stereo pairs on 1/4 in, 1/4 in headphone"),
)
# fmt: on

SYNTHESIZERS = CategoryTable(
    slug="synthesizers",
    name="Synthesizers",
    sku_code="SY",
    blurb="Analog, wavetable, FM and hybrid synthesizers.",
    specs=_synth_specs,
    describe=_synth_describe,
    models=_SYNTH_MODELS,
)

# -- drum machines ------------------------------------------------------------


def _drum_specs(p: Params) -> SpecRows:
    return [
        ("Sound engine", p["engine"]),
        ("Pads", f"{p['pads']} velocity-sensitive pads"),
        ("Voices", str(p["voices"])),
        ("Sequencer steps", str(p["steps"])),
        ("Patterns", str(p["patterns"])),
        ("Sample memory", p.get("memory", "None")),
        ("Outputs", p["outs"]),
        ("Sync", p["sync"]),
    ]


def _drum_describe(name: str, p: Params) -> str:
    sampler = "" if "memory" not in p else f" {p['memory']} of sample memory holds your own kits."
    return (
        f"The {name} is {_a(_lc_first(p['engine']))} drum machine with {p['voices']} voices, "
        f"{p['pads']} pads and a {p['steps']}-step sequencer that stores {p['patterns']} "
        f"patterns.{sampler} Per-step parameter locks and swing keep grooves moving."
    )


# fmt: off
_DRUM_MODELS: tuple[Model, ...] = (
    model("T-1", "Compact Drum Machine", 179, engine="Digital", pads=8, voices=8,
          steps=16, patterns=64, outs="Stereo 3.5 mm", sync="MIDI in, analog clock"),
    model("T-2", "Compact Drum Machine", 299, engine="Digital", pads=16, voices=12,
          steps=32, patterns=128, outs="Stereo 1/4 in",
          sync="MIDI in/out, analog clock, USB"),
    model("BX-8", "Analog Drum Machine", 349, engine="Analog", pads=8, voices=8,
          steps=16, patterns=96, outs="Stereo 1/4 in + 4 individual",
          sync="MIDI in/out, DIN sync"),
    model("BX-16", "Analog Drum Machine", 549, "OutOfStock", engine="Analog", pads=16,
          voices=11, steps=64, patterns=128, outs="Stereo 1/4 in + 8 individual",
          sync="MIDI in/out, DIN sync, USB"),
    model("BX-32", "Analog Drum Machine", 899, engine="Analog with sample layers",
          pads=16, voices=16, steps=64, patterns=256, memory="128 MB",
          outs="Stereo 1/4 in + 12 individual", sync="MIDI in/out, DIN sync, USB"),
    model("RX-8", "Sample Drum Machine", 249, engine="Sample-based", pads=8, voices=8,
          steps=32, patterns=128, memory="64 MB", outs="Stereo 1/4 in",
          sync="MIDI in/out, USB"),
    model("RX-12", "Sample Drum Machine", 449, engine="Sample-based", pads=12,
          voices=12, steps=64, patterns=256, memory="256 MB",
          outs="Stereo 1/4 in + 2 individual", sync="MIDI in/out, USB"),
    model("RX-24", "Sample Drum Machine", 799, engine="Sample-based", pads=16,
          voices=24, steps=64, patterns=512, memory="2 GB",
          outs="Stereo 1/4 in + 6 individual", sync="MIDI in/out, USB, Ableton Link"),
    model("GS-1", "Groovebox", 1299, "PreOrder", engine="Hybrid analog/sample", pads=16,
          voices=16, steps=128, patterns=512, memory="4 GB",
          outs="Stereo 1/4 in + 8 individual", sync="MIDI in/out, USB, analog clock"),
    model("GS-2", "Groovebox", 1799, engine="Hybrid analog/sample", pads=16, voices=32,
          steps=128, patterns=1024, memory="16 GB",
          outs="Stereo 1/4 in + 16 individual",
          sync="MIDI in/out, USB, analog clock, Ableton Link"),
)
# fmt: on

DRUM_MACHINES = CategoryTable(
    slug="drum-machines",
    name="Drum Machines",
    sku_code="DR",
    blurb="Analog, sample-based and hybrid drum machines and grooveboxes.",
    specs=_drum_specs,
    describe=_drum_describe,
    models=_DRUM_MODELS,
)

# -- brands -------------------------------------------------------------------

BRANDS: tuple[BrandTable, ...] = (
    BrandTable(
        slug="northwind",
        name="Northwind Audio",
        short_name="Northwind",
        tagline="Monitoring you can trust, from the desktop to the mastering room.",
        sku_prefix="NWA",
        gtin_prefix="0860012",
        warranty_years=3,
        return_days=30,
        firmware_tool="Northwind Control",
        support_email="support@northwind-audio.example",
        support_phone="+1 (555) 010-4400",
        support_hours=f"Monday to Friday, 9:00{EN_DASH}17:00 Pacific Time",
        shipping_regions=("United States", "Canada", "United Kingdom", "European Union"),
        categories=(STUDIO_MONITORS, HEADPHONES, AUDIO_INTERFACES),
    ),
    BrandTable(
        slug="cobalt",
        name="Cobalt Instruments",
        short_name="Cobalt",
        tagline="Instruments and mixers for the stage, the studio and the stream.",
        sku_prefix="CBI",
        gtin_prefix="0860034",
        warranty_years=2,
        return_days=45,
        firmware_tool="Cobalt Connect",
        support_email="help@cobalt-instruments.example",
        support_phone="+1 (555) 010-7700",
        support_hours=f"Monday to Saturday, 10:00{EN_DASH}18:00 Eastern Time",
        shipping_regions=("United States", "Canada", "Mexico", "Japan", "Australia"),
        categories=(MIXERS, SYNTHESIZERS, DRUM_MACHINES),
    ),
)
