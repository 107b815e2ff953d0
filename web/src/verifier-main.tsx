// The verifier console (verifier.html, served at /verifier/): the same build, components and messages as
// the counter page (main.tsx), another entry.
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { ConsoleApp } from './Console.tsx';
import { I18nProvider } from './i18n.tsx';
import './styles.css';

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <I18nProvider>
      <ConsoleApp />
    </I18nProvider>
  </StrictMode>,
);
