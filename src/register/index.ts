// The resident register (住民基本台帳): residents, their history, CSV import, and the outbox that turns
// register events into certificate revocations. The rules are in register.ts (history, late events),
// outbox.ts (what is revoked, and when) and ../counter/issuance.ts (Art. 6 slots).

export {
  type ResidentCertificate,
  residentCertificates,
  revocationSentence,
  type Sentence,
} from './certificates.ts';
export { municipalityCheckDigit, municipalityCodeProblem, residentIdProblem } from './codes.ts';
export { type CsvOptions, CsvParser, type CsvRecord, parseCsvStream } from './csv.ts';
export {
  EventConflictError,
  ImportFormatError,
  RegisterStateError,
  RegisterValidationError,
  UnknownResidentError,
  type ValidationIssue,
} from './errors.ts';
export {
  basicFactsOf,
  CERTIFICATE_FIELDS,
  RESIDENT_FIELDS,
  type RegisterEventType,
  type ResidentFacts,
  type ResidentFactsInput,
  type ResidentField,
  type ResidentState,
  type ResidentStatus,
} from './facts.ts';
export {
  type ImportOptions,
  type ImportProgress,
  type ImportResult,
  type ImportRowError,
  importResidents,
} from './import.ts';
export {
  type OutboxOutcome,
  OutboxProcessor,
  type OutboxProcessorOptions,
  type OutboxStats,
  revokeForEvent,
} from './outbox.ts';
export {
  type FactsAt,
  factsAt,
  foldEvents,
  getResident,
  type OutboxAction,
  outboxSignal,
  REGISTER_EVENT_TYPES,
  REGISTER_OUTBOX_TOPIC,
  type RecordEventOptions,
  type RecordEventResult,
  type RegisterEvent,
  type RegisterEventInput,
  recordEvent,
  residentHistory,
  type Snapshot,
} from './register.ts';
export {
  type CertificateKind,
  clearSlot,
  type RevokeResidentCertificateOptions,
  revokeResidentCertificate,
} from './slots.ts';
