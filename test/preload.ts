/**
 * Test preload: the reflect polyfill that @peculiar/x509 (tsyringe) needs must load before any
 * module that imports it (STYLE.md rule 6).
 * @module
 */
import 'reflect-metadata'
