// Shim of `k6/encoding` (base64).
const FORMS = {
  std: (b) => b.toString('base64'),
  rawstd: (b) => b.toString('base64').replace(/=+$/, ''),
  url: (b) => b.toString('base64').replace(/\+/g, '-').replace(/\//g, '_'),
  rawurl: (b) => b.toString('base64url'),
};

export function b64encode(input, encoding = 'std') {
  const form = FORMS[encoding];
  if (!form) throw new Error(`k6 shim: b64encode encoding ${encoding} is not supported`);
  return form(Buffer.from(input));
}

export function b64decode(input, encoding = 'std', format) {
  const b = Buffer.from(input, encoding.includes('url') ? 'base64url' : 'base64');
  return format === 's' ? b.toString() : b;
}

export default { b64encode, b64decode };
