// The time zone the pages show times in: the one the person chose in Account Settings
// (sent with their session), else this device's. Formatters made with `zoned()` follow
// a choice made after they were created (pages build them at load, before the session
// is known).

let chosen = null;

/** Set by the portal shell from the session (null: follow the device). */
export function useZone(timeZone) {
  chosen = timeZone || null;
}

/** This device's zone (what "automatic" means). */
export function deviceZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** The zone times are shown in now. */
export function zone() {
  return chosen || deviceZone();
}

/** An Intl.DateTimeFormat-like object (format, formatToParts) in the current zone. */
export function zoned(locale, options) {
  let made = null;
  let madeFor = null;
  const current = () => {
    const z = zone();
    if (madeFor !== z) {
      made = new Intl.DateTimeFormat(locale, { ...options, timeZone: z });
      madeFor = z;
    }
    return made;
  };
  return {
    format: (date) => current().format(date),
    formatToParts: (date) => current().formatToParts(date),
  };
}

/** "America/Chicago (Central Standard Time)" for `name` (the current zone by default). */
export function zoneLabel(name = zone()) {
  const part = new Intl.DateTimeFormat(undefined, { timeZone: name, timeZoneName: "long" })
    .formatToParts(new Date())
    .find((p) => p.type === "timeZoneName");
  return part ? `${name} (${part.value})` : name;
}

/** Every zone this browser knows, for a chooser (a short list where the browser cannot say). */
export function knownZones() {
  if (typeof Intl.supportedValuesOf === "function") return Intl.supportedValuesOf("timeZone");
  return ["America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
    "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu", "UTC"];
}
