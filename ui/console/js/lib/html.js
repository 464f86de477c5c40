// The view layer: Preact with htm templates (vendored, see vendor/README.md).
import { h, render, createContext, Fragment } from "../../vendor/preact.module.js";
import {
  useState, useEffect, useRef, useMemo, useCallback, useContext, useReducer,
} from "../../vendor/hooks.module.js";
import htm from "../../vendor/htm.module.js";

export const html = htm.bind(h);
export {
  h, render, createContext, Fragment,
  useState, useEffect, useRef, useMemo, useCallback, useContext, useReducer,
};
