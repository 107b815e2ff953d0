// Errors of the resident register. Every refusal says which field or rule, and nothing is written.

export interface ValidationIssue {
  /** The input field (CSV column name for imports), or '' for the whole record. */
  field: string;
  message: string;
}

/** Input that fails validation: a code, a fact, a date. `issues` lists every problem found. */
export class RegisterValidationError extends Error {
  override name = 'RegisterValidationError';
  readonly issues: readonly ValidationIssue[];
  constructor(issues: readonly ValidationIssue[]) {
    super(issues.map((i) => (i.field ? `${i.field}: ${i.message}` : i.message)).join('; '));
    this.issues = issues;
  }
  /** The field of the first issue. */
  get field(): string {
    return this.issues[0]?.field ?? '';
  }
}

export class UnknownResidentError extends Error {
  override name = 'UnknownResidentError';
  readonly residentId: string;
  constructor(residentId: string) {
    super(`no resident with resident id ${residentId} in the register`);
    this.residentId = residentId;
  }
}

/** The event is not possible in the resident's state (registered twice, moving after death, …). */
export class RegisterStateError extends Error {
  override name = 'RegisterStateError';
}

/** A source event id was used again for a different event: refused, never merged. */
export class EventConflictError extends Error {
  override name = 'EventConflictError';
  readonly sourceEventId: string;
  readonly originalEventId: number;
  constructor(sourceEventId: string, originalEventId: number) {
    super(
      `source event id ${sourceEventId} was already recorded (register event ${originalEventId}) with different content`,
    );
    this.sourceEventId = sourceEventId;
    this.originalEventId = originalEventId;
  }
}

/** A CSV import that cannot start: bad header, unknown or missing columns. Nothing is written. */
export class ImportFormatError extends Error {
  override name = 'ImportFormatError';
}
