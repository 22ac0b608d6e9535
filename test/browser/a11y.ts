import type { Page } from 'playwright-core';

/**
 * Accessibility measurements taken in the page from what Chromium computed (styles, boxes), not
 * from the stylesheet's source: what a user gets is what is checked.
 */

export interface Finding {
  what: string;
  detail: string;
}

type Rgba = [number, number, number, number];
type Rgb = [number, number, number];
/** The helpers installed in the page as `window.fluxoA11y` (see LIB). */
interface Lib {
  parse(css: string): Rgba;
  over(top: Rgba, below: Rgb): Rgb;
  ratio(a: Rgb, b: Rgb): number;
  behind(el: Element): Rgb;
  name(el: Element): string;
  visible(el: Element): boolean;
}
type WithLib = typeof globalThis & { fluxoA11y: Lib };

/**
 * Installed as source text, not as functions handed to page.evaluate: the test's own transpiler may
 * wrap named functions in helpers that do not exist in the page.
 * Contrast: WCAG 2.x relative luminance, colours alpha-composited over what is behind them.
 */
const LIB = `window.fluxoA11y = (() => {
  const parse = (c) => {
    const m = /^rgba?\\(([^)]+)\\)$/.exec(c.trim());
    if (!m) return null;
    const p = m[1].split(/[\\s,/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, below) => [0, 1, 2].map((i) => top[i] * top[3] + below[i] * (1 - top[3]));
  const lum = (rgb) => {
    const [r, g, b] = rgb.map((v) => { const s = v / 255; return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => { const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x); return (hi + 0.05) / (lo + 0.05); };
  /* The colour behind an element: its own background and its ancestors', down to the first opaque one (else the white canvas). */
  const behind = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const bg = parse(getComputedStyle(e).backgroundColor);
      if (bg && bg[3] > 0) { layers.push(bg); if (bg[3] >= 1) break; }
    }
    return layers.reverse().reduce((acc, layer) => over(layer, acc), [255, 255, 255]);
  };
  const name = (el) => {
    const parts = [];
    for (let e = el; e && e !== document.body && parts.length < 3; e = e.parentElement)
      parts.unshift(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.classList.length ? '.' + [...e.classList].join('.') : ''));
    return parts.join(' > ');
  };
  const visible = (el) => {
    if (!el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) return false;
    const r = el.getBoundingClientRect();
    /* 1 px boxes are the visually-hidden pattern (read by screen readers only). */
    return r.width > 1 && r.height > 1;
  };
  return { parse, over, ratio, behind, name, visible };
})()`;

async function install(page: Page): Promise<void> {
  await page.evaluate(LIB);
}

/**
 * Every visible text (elements with their own text, and selects) whose contrast with what is
 * behind it is below `min`. Disabled controls are left out, as WCAG 1.4.3 does.
 */
export async function lowContrast(page: Page, min = 4.5): Promise<{ checked: number; low: Finding[] }> {
  await install(page);
  return page.evaluate(
    ({ min }) => {
      const { parse, over, ratio, behind, name, visible } = (globalThis as WithLib).fluxoA11y;
      const low: { what: string; detail: string }[] = [];
      let checked = 0;
      for (const el of Array.from(document.body.querySelectorAll<HTMLElement>('*'))) {
        const ownText = Array.from(el.childNodes).some((n) => n.nodeType === Node.TEXT_NODE && (n.textContent ?? '').trim() !== '');
        if (!(ownText || el.tagName === 'SELECT') || el.tagName === 'OPTION' || el.tagName === 'SCRIPT') continue;
        if ((el as HTMLButtonElement).disabled || !visible(el)) continue;
        checked++;
        const bg = behind(el);
        const fg = over(parse(getComputedStyle(el).color), bg);
        const r = ratio(fg, bg);
        if (r < min)
          low.push({
            what: name(el),
            detail: `"${(el.textContent ?? '').trim().slice(0, 40)}" ${r.toFixed(2)}:1 (text rgb(${fg.map(Math.round)}), behind rgb(${bg.map(Math.round)}))`,
          });
      }
      return { checked, low };
    },
    { min },
  );
}

/**
 * The lowest contrast of avatar initials over every hue the page can give an avatar (it picks the
 * hue from the user id): one real avatar, restyled with each hue in turn.
 */
export async function avatarContrastOverHues(page: Page): Promise<{ hue: number; ratio: number }> {
  await install(page);
  return page.evaluate(() => {
    const { parse, over, ratio, behind } = (globalThis as WithLib).fluxoA11y;
    const sample = document.querySelector<HTMLElement>('.avatar');
    if (!sample?.parentElement) throw new Error('no avatar on the page');
    let worst = { hue: -1, ratio: Number.POSITIVE_INFINITY };
    for (let hue = 0; hue < 360; hue++) {
      const probe = sample.cloneNode(true) as HTMLElement;
      probe.style.setProperty('--hue', String(hue));
      sample.parentElement.append(probe);
      const bg = behind(probe);
      const r = ratio(over(parse(getComputedStyle(probe).color), bg), bg);
      probe.remove();
      if (r < worst.ratio) worst = { hue, ratio: r };
    }
    return worst;
  });
}

/** Visible controls (anything a tap or Tab reaches) smaller than `min` × `min` CSS px. */
export async function smallTargets(page: Page, min = 44): Promise<{ checked: number; small: Finding[] }> {
  await install(page);
  return page.evaluate(
    ({ min }) => {
      const { name, visible } = (globalThis as WithLib).fluxoA11y;
      const small: { what: string; detail: string }[] = [];
      let checked = 0;
      const controls = 'a[href], button, input, select, textarea, summary, [tabindex]:not([tabindex="-1"])';
      for (const el of Array.from(document.querySelectorAll<HTMLElement>(controls))) {
        if (!visible(el)) continue;
        checked++;
        const r = el.getBoundingClientRect();
        // Half a pixel: boxes are fractional, a 44 px min-height may lay out as 43.99.
        if (r.width < min - 0.5 || r.height < min - 0.5)
          small.push({
            what: name(el),
            detail: `${r.width.toFixed(1)} × ${r.height.toFixed(1)} "${(el.textContent ?? '').trim().slice(0, 30)}"`,
          });
      }
      return { checked, small };
    },
    { min },
  );
}

export interface Box {
  what: string;
  left: number;
  right: number;
  top: number;
  bottom: number;
  width: number;
  height: number;
}

/** The boxes of the elements a selector matches, in page coordinates. */
export async function boxes(page: Page, selector: string): Promise<Box[]> {
  return page.locator(selector).evaluateAll((els) =>
    els.map((el) => {
      const r = el.getBoundingClientRect();
      const what = `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${(el as HTMLElement).dataset.stage ? `[${(el as HTMLElement).dataset.stage}]` : ''}.${Array.from(el.classList).join('.')}`;
      return { what, left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height };
    }),
  );
}

export function overlap(a: Box, b: Box): boolean {
  return a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
}
