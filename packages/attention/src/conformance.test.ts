import { conformanceEntries } from "./conformance/implementations.js";
import { attentionConformanceSuite } from "./conformance/suite.js";

attentionConformanceSuite(conformanceEntries());
