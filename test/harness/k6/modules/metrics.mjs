// Shim of `k6/metrics`: samples are collected per VU and merged by the runner.
const rt = () => globalThis.__k6;

class Metric {
  constructor(type, name, isTime = false) {
    this.name = name;
    this.type = type;
    rt().declare(name, type, isTime);
    this.isTime = isTime;
  }

  add(value, tags = {}) {
    rt().add(this.name, this.type, typeof value === 'boolean' ? Number(value) : value, tags, this.isTime);
  }
}

export class Counter extends Metric {
  constructor(name, isTime) {
    super('counter', name, isTime);
  }
}
export class Trend extends Metric {
  constructor(name, isTime) {
    super('trend', name, isTime);
  }
}
export class Rate extends Metric {
  constructor(name, isTime) {
    super('rate', name, isTime);
  }
}
export class Gauge extends Metric {
  constructor(name, isTime) {
    super('gauge', name, isTime);
  }
}

export default { Counter, Trend, Rate, Gauge };
